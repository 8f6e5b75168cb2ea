"""Setting a namespace up for Gatekeeper: creating it if asked, registering its search
attributes, and listing them.

Every custom attribute in :data:`gatekeeper.search_attributes.ALL` must be registered before a
worker runs (a workflow upserting an unregistered attribute retries its task forever).
``gatekeeper dev`` (through :class:`workers.devserver.DevServer`, at every start: ``start-dev``
applies its ``--search-attribute`` flags only when it creates the namespace),
``gatekeeper search-attributes register`` (the compose stack's setup job) and ``gatekeeper worker
--register-search-attributes`` all call :func:`ensure_search_attributes`, which works against
any cluster whose operator service accepts ``AddSearchAttributes``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import structlog
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
    ListSearchAttributesResponse,
)
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType, SearchAttributeKey
from temporalio.service import RPCError

from gatekeeper import search_attributes
from gatekeeper.errors import ConfigError
from gatekeeper.temporal_errors import already_exists, not_found, service_error

log = structlog.get_logger(__name__)

#: Said when the server refuses to register attributes (Temporal Cloud has its own API).
_CLOUD_HINT = " (on Temporal Cloud register them with `tcld` or the Cloud UI)"


async def ensure_search_attributes(
    client: Client,
    keys: Sequence[SearchAttributeKey[Any]] = search_attributes.ALL,
    *,
    namespace: str | None = None,
) -> list[str]:
    """Register whichever of ``keys`` the namespace lacks; return the names added.

    Safe to run from many processes at once, and against a dev server, a self-hosted cluster or
    any server whose operator service accepts ``AddSearchAttributes``.

    Raises:
        ConfigError: an attribute exists with another type, or the server refuses to register
            (Temporal Cloud registers attributes through its own API, not this one).
        ConnectionFailed: the server could not be reached.
    """
    namespace = namespace or client.namespace
    existing = await _registered(client, namespace)
    for key in keys:
        have = existing.get(key.name)
        if have is not None and have != key.indexed_value_type:
            raise ConfigError(
                f"search attribute {key.name} is registered as {_type_name(have)} on namespace "
                f"{namespace}, but Gatekeeper needs {_type_name(key.indexed_value_type)}"
            )
    missing = {k.name: int(k.indexed_value_type) for k in keys if k.name not in existing}
    if not missing:
        return []
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)  # type: ignore[arg-type]
        )
    except RPCError as err:
        if not already_exists(err):  # another process registered them first
            raise service_error(
                err,
                f"cannot register search attributes {', '.join(missing)}",
                refused_hint=_CLOUD_HINT,
            ) from err
    log.info("search attributes registered", namespace=namespace, names=sorted(missing))
    return sorted(missing)


async def registered_search_attributes(
    client: Client, namespace: str | None = None
) -> dict[str, str]:
    """Custom search attributes of the namespace: name to type (``Keyword``, ``Datetime``...)."""
    response = await _list(client, namespace or client.namespace)
    return {name: _type_name(value) for name, value in sorted(response.custom_attributes.items())}


async def _registered(client: Client, namespace: str) -> dict[str, int]:
    response = await _list(client, namespace)
    return {**response.system_attributes, **response.custom_attributes}


async def _list(client: Client, namespace: str) -> ListSearchAttributesResponse:
    try:
        return await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
    except RPCError as err:
        raise service_error(err, "cannot list search attributes", refused_hint=_CLOUD_HINT) from err


def _type_name(value: int) -> str:
    try:
        return SearchAttributeIndexedValueType(value).name.title().replace("_", "")
    except ValueError:
        return str(value)


async def ensure_namespace(
    client: Client,
    namespace: str,
    retention: timedelta,
    deadline: float,
    *,
    retry_every: float = 1.0,
) -> None:
    """Create ``namespace`` unless it exists, then wait until the server serves it, at most until
    ``deadline`` (the running event loop's clock), asking again every ``retry_every`` seconds."""
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace)
        )
        return
    except RPCError as err:
        if not not_found(err):
            raise service_error(err, f"cannot describe namespace {namespace}") from err
    request = RegisterNamespaceRequest(namespace=namespace)
    request.workflow_execution_retention_period.FromTimedelta(retention)
    try:
        await client.workflow_service.register_namespace(request)
        log.info("namespace created", namespace=namespace, retention_days=retention.days)
    except RPCError as refused:
        if not already_exists(refused):  # another setup job was first
            raise service_error(refused, f"cannot create namespace {namespace}") from refused
    # The frontends learn of a new namespace on their next cache refresh (seconds).
    loop = asyncio.get_running_loop()
    while True:
        try:
            await client.operator_service.list_search_attributes(
                ListSearchAttributesRequest(namespace=namespace)
            )
            return
        except RPCError as missing:
            if not not_found(missing) or loop.time() >= deadline:
                raise service_error(
                    missing, f"namespace {namespace} is not served yet"
                ) from missing
        await asyncio.sleep(retry_every)
