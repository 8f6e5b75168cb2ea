"""The order test files reach the xdist workers in: the longest first.

``make test`` runs the suite on two workers with ``--dist loadfile``: a file's tests stay on one
worker, and a worker asks for the next file when it is almost done with its own. Whatever file
is handed out last decides how long the other worker sits idle at the end, so the long files
(a crash campaign, the README walkthrough, the browser releases) must go first and the many
short ones fill in behind them (longest-processing-time-first scheduling). xdist's own order is
by number of tests, which hands a one-test file of a minute out last; this plugin switches that
off (``--no-loadscope-reorder``) and orders the collected items by the seconds each file took,
from :data:`WEIGHTS` (``tests/file_weights.json``, checked in).

A file's weight scales with its number of tests (a file that gains a parametrization, such as a
PostgreSQL run of every test, weighs more); a file not in the table is estimated from its number
of tests. The table is refreshed from a real run::

    python -m pytest -n 2 --dist loadfile --file-weights=tests/file_weights.json

(only the files that ran are updated). Only the order changes: every test runs as before, and a
run without xdist keeps the collection order.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

WEIGHTS = Path(__file__).with_name("file_weights.json")
#: The seconds a test of a file the table does not know is taken to need.
UNKNOWN_PER_TEST = 1.0


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--file-weights",
        metavar="PATH",
        default=None,
        help="write the seconds each test file took (setup, call, teardown) to PATH as JSON, "
        "merged into what PATH holds (tests/file_weights.json orders the xdist run)",
    )


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    # xdist would sort files by number of tests, undoing the order below.
    if getattr(config.option, "dist", "no") in ("loadfile", "loadscope", "loadgroup"):
        config.option.loadscopereorder = False
    if config.getoption("--file-weights") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(Recorder(Path(config.getoption("--file-weights"))))


def load_weights(path: Path = WEIGHTS) -> dict[str, tuple[float, int]]:
    """``{file: (seconds, tests)}`` from the table; empty if it is missing."""
    if not path.exists():
        return {}
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {name: (float(entry[0]), int(entry[1])) for name, entry in raw.items()}


def estimate(weights: dict[str, tuple[float, int]], file: str, tests: int) -> float:
    """The seconds ``file`` is expected to take with ``tests`` tests."""
    known = weights.get(file)
    if known is None or known[1] == 0:
        return tests * UNKNOWN_PER_TEST
    seconds, measured = known
    return seconds * tests / measured


def file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def longest_first(nodeids: list[str], weights: dict[str, tuple[float, int]]) -> list[str]:
    """``nodeids`` grouped by file, the heaviest file first; within a file, the given order."""
    counts = Counter(file_of(n) for n in nodeids)
    first_seen = {f: i for i, f in reversed(list(enumerate(file_of(n) for n in nodeids)))}
    rank = {f: (-estimate(weights, f, counts[f]), first_seen[f]) for f in counts}
    return sorted(nodeids, key=lambda n: rank[file_of(n)])


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Every xdist worker collects and must arrive at the same order: this depends only on the
    # collected ids and the checked-in table.
    if not hasattr(config, "workerinput"):
        return
    order = {n: i for i, n in enumerate(longest_first([i.nodeid for i in items], load_weights()))}
    items.sort(key=lambda item: order[item.nodeid])


class Recorder:
    """Sums each file's test durations (on the xdist controller, or a plain run) and merges them
    into the table at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds: dict[str, float] = defaultdict(float)
        self.tests: dict[str, set[str]] = defaultdict(set)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        file = file_of(report.nodeid)
        self.seconds[file] += report.duration
        self.tests[file].add(report.nodeid)

    def pytest_sessionfinish(self) -> None:
        table = {f: list(entry) for f, entry in load_weights(self.path).items()}
        for file, seconds in self.seconds.items():
            table[file] = [round(seconds, 2), len(self.tests[file])]
        self.path.write_text(dump(table), encoding="utf-8")


def dump(table: dict[str, list[float | int]]) -> str:
    """The table as JSON, one file a line, the heaviest first."""
    ordered = sorted(table.items(), key=lambda kv: (-kv[1][0], kv[0]))
    rows = [f" {json.dumps(f)}: [{entry[0]}, {entry[1]}]" for f, entry in ordered]
    return "{\n" + ",\n".join(rows) + "\n}\n"
