"""Who acted, proven: the keys the worker trusts and the statements people sign with them.

- :mod:`gatekeeper.identity.keys`: a registered key (``KeyRecord``), its id and certificate.
- :mod:`gatekeeper.identity.authority`: how a worker's update validators reach the worker's key
  directory (the registry in its database), and nothing else.
- :mod:`gatekeeper.statements`: the exact bytes a person signs for a request.
"""
