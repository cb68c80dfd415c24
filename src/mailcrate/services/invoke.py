"""The one road into a service operation: validate, authorize, call the handler.

The HTTP server calls :func:`invoke` once it has authenticated and parsed a request
(:mod:`mailcrate.server.dispatch`); in-process callers (the export writing into the embedded
S3 and KMS as the job's role) call it with the parameters they would have sent. Both therefore
get the model's constraint checks, the generic ``service:Operation`` authorization and the
handler's own resource checks from one code path: a rule added here or in a handler applies to
every caller.
"""

from __future__ import annotations

import uuid
from typing import Any

from mailcrate.accounts import Principal
from mailcrate.protocol.errors import ServiceError, ServiceUnavailable, UnknownOperationError, ValidationError
from mailcrate.protocol.http import Headers, HttpRequest, HttpResponse
from mailcrate.protocol.validate import validate
from mailcrate.services.base import Call, ServiceSpec, WriteGuard
from mailcrate.services.context import ServiceContext
from mailcrate.storage.faults import storage_fault

__all__ = ["in_process_request", "invoke", "spec_of", "unavailable_error"]

DEFAULT_REGION = "us-east-1"


def in_process_request(client_ip: str = "127.0.0.1") -> HttpRequest:
    """The request an in-process call carries: what condition keys read from a request (the
    client address, a plain-HTTP scheme, no headers), as a loopback call would have had."""
    return HttpRequest("POST", "/", "", Headers(), client_ip=client_ip)


def spec_of(context: ServiceContext, service: str) -> ServiceSpec:
    spec = context.services.get(service)
    if spec is None:
        raise UnknownOperationError(f"No mailcrate service is named {service!r}")
    return spec


def invoke(
    context: ServiceContext,
    principal: Principal,
    service: str,
    operation: str,
    params: dict[str, Any],
    *,
    region: str | None = None,
    request: HttpRequest | None = None,
    request_id: str | None = None,
    on_behalf_of_service: str | None = None,
    write_guard: WriteGuard | None = None,
) -> dict[str, Any] | HttpResponse:
    """Run ``service``'s ``operation`` for an authenticated ``principal``.

        Returns the handler's output (the operation's output shape as Python values, or an
        :class:`HttpResponse` for operations that stream); raises a
        :class:`~mailcrate.protocol.errors.ServiceError` (validation, access denied, the service's
        own errors). ``region`` is the one the caller signed for (global services answer in theirs).
    ``on_behalf_of_service`` names the AWS service making the call for the principal (in-process
    callers such as the export), which the ``aws:CalledVia`` condition keys report.
    ``write_guard`` is an in-process caller's fencing check, run where each write of the call
    commits (:meth:`~mailcrate.services.base.Call.guard_write`).
    """
    spec = spec_of(context, service)
    handler = spec.handlers.get(operation)
    if handler is None:
        raise UnknownOperationError(f"{operation} is not implemented by mailcrate")
    problems = validate(
        spec.model.operation_model(operation).input_shape, params, anchored=spec.anchored_patterns
    )
    if problems:
        raise ValidationError.from_problems(problems, spec.validation_error_code)
    call = Call(
        spec.name,
        operation,
        params,
        principal,
        spec.global_region or region or DEFAULT_REGION,
        request_id or str(uuid.uuid4()),
        request if request is not None else in_process_request(),
        context,
        on_behalf_of_service,
        write_guard,
    )
    try:
        action = spec.action_for(call) if spec.action_for else f"{spec.action_prefix}:{operation}"
        if action is not None:
            call.authorize(action, spec.resource_for(call))
        return handler(call)
    except Exception as exc:
        unavailable = unavailable_error(exc)
        if unavailable is None:
            raise
        raise unavailable from exc


def unavailable_error(exc: BaseException) -> ServiceUnavailable | None:
    """The 503 a failure of the storage underneath deserves (a full disk, a database that cannot
    be reached: try again later), or None for any other failure."""
    if isinstance(exc, ServiceError):
        return None
    fault = storage_fault(exc)
    if fault is None:
        return None
    return ServiceUnavailable(
        f"The service is unavailable: {fault.value} on the server. Nothing was changed; try again later."
    )
