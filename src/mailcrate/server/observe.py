"""What the server does after answering a call: the audit trail and the metrics.

:func:`finished` is the one line :mod:`mailcrate.server.dispatch` calls for every request; each
observer is optional on the :class:`~mailcrate.server.runtime.Runtime` (off: ``--audit false``,
``--metrics false``), so the cost of a switched-off one is an attribute test.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mailcrate.accounts import Principal
from mailcrate.audit.requests import call_rows, is_recorded
from mailcrate.protocol.errors import ServiceError
from mailcrate.protocol.http import HttpRequest
from mailcrate.server.runtime import Runtime
from mailcrate.services.base import ServiceSpec
from mailcrate.services.s3 import buckets


def finished(
    runtime: Runtime,
    request: HttpRequest,
    request_id: str,
    spec: ServiceSpec | None,
    operation: str,
    principal: Principal | None,
    region: str,
    params: dict[str, Any] | None,
    output: Any,
    error: ServiceError | None,
    status: int,
    elapsed: float,
) -> None:
    metrics = runtime.metrics
    if metrics is not None:
        metrics.request(spec.name if spec else "-", operation, status, elapsed)
    audit = runtime.audit
    if audit is None or principal is None or spec is None or not is_recorded(spec.name, operation):
        return
    account_id = _bucket_owner(runtime, params) if principal.is_anonymous else principal.account_id
    if not account_id:  # an anonymous call on no bucket of anyone's has no trail to go to
        return
    op_model = spec.model.operation_model(operation) if operation in spec.handlers else None
    rows = call_rows(
        service=spec.name,
        operation=operation,
        input_shape=op_model.input_shape if op_model is not None else None,
        params=params,
        output=output if isinstance(output, Mapping) else None,
        principal=principal,
        account_id=account_id,
        region=region,
        request_id=request_id,
        source_ip=request.client_ip,
        user_agent=request.headers.get("user-agent"),
        error_code=error.code if error is not None else None,
        error_message=error.message if error is not None else None,
    )
    audit.write_rows(rows)


def _bucket_owner(runtime: Runtime, params: Mapping[str, Any] | None) -> str | None:
    """The owner of the bucket an anonymous S3 call named (CloudTrail delivers such data events
    to the bucket owner), or None."""
    name = (params or {}).get("Bucket")
    if not isinstance(name, str):
        return None
    try:
        with runtime.context.db.read() as conn:
            return buckets.find(conn, name).account_id
    except ServiceError:  # NoSuchBucket
        return None
