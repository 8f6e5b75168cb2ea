"""``make bench``: how fast Gatekeeper is, measured side by side with bare Temporal.

    python -m bench [--releases 200] [--parked 1000] [--json-out bench-results.json]

On one fresh file-backed dev server (SQLite, WAL) it measures:

- **throughput** (:mod:`bench.pipeline`): N releases through the whole pipeline (compressed
  clocks, approvals sent as updates by a driver per release, all at once, :mod:`bench.release`),
  then N runs of a bare Temporal workflow with the same number of activities, updates and timers
  (:mod:`bench.baseline`); both on an in-process worker with the same options. The ratio is what
  Gatekeeper costs over Temporal.
- **approval round trip**: from sending an approval update to its result, idle and under load.
- **memory** (:mod:`bench.parked`): the RSS of a ``gatekeeper worker`` process (measured alone,
  from ``/proc``) with M releases parked in their government window.
- **access checks** (the registry's bench, 100,000 grants: :mod:`bench.access`) and
  **notification fan-out** (:mod:`bench.notify`).

It prints a table (:mod:`bench.report`) and writes every figure as JSON (:mod:`bench.run`). The
targets are reported, not asserted. The package is a development tool: it is not in the wheel.
"""
