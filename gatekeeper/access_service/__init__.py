"""The access-decision service: ``gatekeeper access serve``, for gateways to ask per request.

API gateways authorise a request with a subrequest (nginx ``auth_request``, Envoy ``ext_authz``,
Traefik ``forwardAuth``): a 2xx answer lets the request through, 401 or 403 refuses it. This
service answers such subrequests from an in-memory view of the access registry (grants, people,
partners, orders, public launches), kept current from the registry's change feed.

Running it::

    gatekeeper access serve [--host 127.0.0.1] [--port 8470] [--config FILE]
                            [--insecure-no-caller-auth]

prints ``access service listening on http://HOST:PORT (view seq N, G grants)`` once it answers
(``--port 0``: any free port, the line says which). It is configured by ``[access_service]`` in
the worker's configuration file (:class:`gatekeeper.config.AccessServiceConfig`)::

    [access_service]
    host = "127.0.0.1"
    port = 8470
    tokens_file = "/srv/gatekeeper/gateway-tokens"   # one token per line; re-read when changed
    token_env = "GATEKEEPER_GATEWAY_TOKEN"           # and/or a variable holding one
    tls_cert = "/srv/gatekeeper/access.crt"          # TLS; with client_ca, callers need a
    tls_key = "/srv/gatekeeper/access.key"           # certificate that CA signed (mTLS)
    client_ca = "/srv/gatekeeper/gateway-ca.pem"
    staleness = 2.0      # s: past it without a confirmed-current view, every answer is deny
    poll = 0.1           # s: how often the change feed is polled
    allow_sample = 0.01  # share of allows in the edge log (every deny is logged)
    log_file = "/var/log/gatekeeper/access-decisions.jsonl"   # default: standard error

Asking (any method; the path ``/v1/decision`` or any path under it, which is what Envoy sends)::

    GET /v1/decision
    X-Gatekeeper-Gateway-Token: <token>     # the calling gateway (unless mTLS only)
    X-Gatekeeper-Person: bruno              # the end user, as the gateway authenticated them
    X-Gatekeeper-Model: aurora
    X-Gatekeeper-Version: 2                 # optional: require this model version
    X-Gatekeeper-Surface: api               # optional: api (default), app, cloud_marketplace

The inputs may be query parameters instead (``?person=bruno&model=aurora``); a header and a
parameter that disagree are refused, other parameters are ignored (Envoy passes the original
request's on), and a token is only ever read from its header. A gateway should set the person
and model headers itself, from its own authentication and route, and never pass a client's.

Answers:

- **200** allow / **403** deny, JSON ``{"decision", "rule", "reason", "order_id", "grant_id",
  "person", "model", "version", "surface", "view_seq", "view_age_ms"}`` and the headers
  ``X-Gatekeeper-Decision``, ``X-Gatekeeper-Rule`` and ``X-Gatekeeper-Order`` (when an order
  decided). ``rule`` is the registry's rule (:class:`gatekeeper.access.AccessRule`: grant,
  public, exemption, order, fail_closed, unknown_person, no_grant, tier, suspended, revoked) or
  one of the service's own: ``invalid_request`` (a person or model that is not a registry id, a
  version that is not 1-200 printable ASCII characters, an unknown surface, an input given twice
  or disagreeing; a 400 would turn into a 500 at nginx) and ``fail_closed`` with the reason
  ``access view not confirmed current for 2.4 s (bound 2 s): <last error>``, when the registry
  could not be read for longer than ``staleness``.
- **401** ``{"error": "..."}``: no or a wrong gateway token, or no person (the gateway did not
  authenticate its user).
- **431** ``{"error": "..."}``: a request head over 16 KiB or with over 100 headers (the server
  buffers no more than that of an incomplete head either). Behind nginx any status but 2xx,
  401 and 403 becomes a 500: still a refusal. Send the gateway's own headers, not all of the
  client's (nginx: ``proxy_pass_request_headers off``).
- ``/healthz``: 200 while the process runs; ``/readyz``: 200, or 503 while decisions fail
  closed. Neither needs a token or says anything about the registry. Any other path is 404.

Caller authentication is a token (compared as sha256 digests in constant time, several
accepted during a rotation) or mTLS, or both. A service with neither refuses to start; for a
local experiment ``--insecure-no-caller-auth`` lifts that on a loopback host only.

Performance: a bare ASGI callable on uvicorn with the ``httptools`` (llhttp) parser, one
process; a decision is a few dictionary look-ups on the event loop. At 100,000 grants on 2
cores (client on the same machine): about 9,000 decisions/s on one keep-alive connection with
p50 0.1 ms, and at 2,000/s over 4 connections p50 0.2 ms, p99 1-2 ms; h11 answered a third as
many. ``make bench`` measures it (:mod:`bench.access_service`, :mod:`bench.loadgen`).

Following the registry: one thread polls ``AccessChecker.update()`` every ``poll`` seconds (the
change feed: only rows changed since the view's sequence number are read), so an order applied
or a grant revoked is answered within about ``poll`` seconds of its commit. Checks never wait
for the database. The time the last successful poll started bounds the view's age.

The edge log (:mod:`gatekeeper.access_service.edge_log`) writes one JSON line per deny and per
sampled allow: the evidence that an order was enforced at the edge.
"""

from __future__ import annotations

from gatekeeper.access_service.app import DECISION_PATH, DecisionApp
from gatekeeper.access_service.settings import CallerAuth, ServiceSettings
from gatekeeper.access_service.view import LiveView

__all__ = ["DECISION_PATH", "CallerAuth", "DecisionApp", "LiveView", "ServiceSettings"]
