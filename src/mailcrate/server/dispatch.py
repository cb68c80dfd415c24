"""One request's path through the server: route -> authenticate -> parse -> :func:`invoke`.

:func:`mailcrate.services.invoke.invoke` (validate -> authorize -> handle) is the road every
caller takes into a service; this module adds what only HTTP needs around it.

Every failure on that path becomes an AWS-shaped error of the protocol the client speaks, in this
one place; an unexpected exception is logged (without request secrets) and answered as a 500
``InternalFailure`` that reveals nothing of the server's internals.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from mailcrate.accounts import Principal, session_token_matches
from mailcrate.logs import PRINCIPAL, REQUEST_ID
from mailcrate.protocol.errors import (
    AuthError,
    InternalFailure,
    ServiceError,
    ServiceUnavailable,
    UnknownOperationError,
)
from mailcrate.protocol.http import HttpRequest, HttpResponse
from mailcrate.protocol.jsonproto import JsonProtocol
from mailcrate.protocol.sigv4 import SignatureInfo, check_time, parse_signature, verify_signature
from mailcrate.server import anonymous, observe
from mailcrate.server.runtime import Runtime
from mailcrate.services.base import ServiceSpec, WireProtocol
from mailcrate.services.invoke import invoke, unavailable_error

log = logging.getLogger("mailcrate.server")
_FALLBACK_PROTOCOL = JsonProtocol()
HEALTH_BODY = b'{"status":"ok"}'

#: JSON-protocol calls (by ``X-Amz-Target``) that only read a bounded number of rows by index and
#: touch no file, network or lock: the ASGI app may run them on its event loop instead of a
#: worker thread (SQLite only; see :class:`mailcrate.server.app.MailcrateApp`). Anything that
#: writes, scans, or can wait belongs in a thread, so this list is explicit, not a name pattern.
INLINE_TARGETS = frozenset(
    {
        "WorkMailService.DescribeOrganization",
        "WorkMailService.DescribeMailboxExportJob",
        "WorkMailService.ListMailboxExportJobs",
    }
)


def route(runtime: Runtime, request: HttpRequest, info: SignatureInfo | None) -> ServiceSpec | None:
    """Pick the service as AWS clients address it: target prefix, signing scope, Query action."""
    target = request.headers.get("x-amz-target")
    if target:
        name = runtime.target_prefixes.get(target.rpartition(".")[0])
        if name is None and info is not None:
            name = info.service
        return runtime.services.get(name) if name else None
    if info is not None:
        return runtime.services.get(info.service)
    if request.content_type == "application/x-www-form-urlencoded":
        return _service_for_action(runtime, request)
    return runtime.services.get("s3")


def _service_for_action(runtime: Runtime, request: HttpRequest) -> ServiceSpec | None:
    from urllib.parse import parse_qs

    action = (parse_qs(request.body.decode("utf-8", "replace")).get("Action") or [""])[0]
    for spec in runtime.services.values():
        if spec.protocol.name == "query" and action in spec.model.operation_names:
            return spec
    return None


def authenticate(runtime: Runtime, request: HttpRequest, info: SignatureInfo | None) -> Principal:
    if info is None:
        raise AuthError("missing", "Missing Authentication Token")
    principal = runtime.principal_for(info.access_key_id)
    if principal is None:
        raise AuthError("unknown-key", "The security token included in the request is invalid.")
    now = datetime.now(UTC)
    check_time(info, now, runtime.settings.clock_skew_seconds)
    verify_signature(request, info, principal.secret_access_key)
    if not session_token_matches(principal, info.session_token):
        raise AuthError("unknown-key", "The security token included in the request is invalid.")
    if principal.expires_at is not None and now >= principal.expires_at:
        raise AuthError("expired", "The security token included in the request is expired")
    return principal


def _render_error(error: ServiceError, spec: ServiceSpec | None, request_id: str) -> HttpResponse:
    protocol: WireProtocol = spec.protocol if spec is not None else _FALLBACK_PROTOCOL
    if isinstance(error, AuthError):
        error.code = protocol.auth_error_codes.get(error.kind, "AccessDenied")  # type: ignore[misc]
    response = protocol.serialize_error(error, spec.model if spec else None, request_id)
    if isinstance(error, ServiceUnavailable):
        response.headers.append(("Retry-After", str(error.retry_after)))
    return response


def _log_unavailable(
    spec: ServiceSpec | None, operation: str, error: ServiceUnavailable, request_id: str
) -> None:
    """The environment's fault, said in one line without a traceback (there is no bug to find)."""
    log.warning("%s.%s: %s (request %s)", spec.name if spec else "-", operation, error.message, request_id)


def handle(runtime: Runtime, request: HttpRequest) -> HttpResponse:
    """Answer one HTTP request. Never raises."""
    started = time.perf_counter()
    request_id = str(uuid.uuid4())
    REQUEST_ID.set(request_id)  # on every log line of this call (mailcrate.logs)
    spec: ServiceSpec | None = None
    operation = "-"
    # What the audit trail and the metrics see of the call (server/observe.py).
    principal: Principal | None = None
    params: dict[str, Any] | None = None
    output: Any = None
    error: ServiceError | None = None
    region = "us-east-1"
    try:
        if (
            request.method == "GET"
            and request.raw_path == "/health"
            and "authorization" not in request.headers
        ):
            return HttpResponse(200, [("Content-Type", "application/json")], HEALTH_BODY)
        try:
            info = parse_signature(request)
        except AuthError:
            spec = route(runtime, request, None)  # answer in the protocol the client speaks
            raise
        spec = route(runtime, request, info)
        if spec is None:
            raise UnknownOperationError("No mailcrate service matches this request")
        if info is not None and info.service != spec.name:
            # A signature is only valid for the service it is scoped to; taken for another, an
            # S3 scope let a WorkMail call declare UNSIGNED-PAYLOAD and swap its body.
            raise AuthError("signature", f"Credential should be scoped to correct service: '{spec.name}'.")
        principal = (
            anonymous.principal_for(spec, request) if info is None else authenticate(runtime, request, info)
        )
        PRINCIPAL.set(principal.arn)
        operation = spec.protocol.operation_name(request, spec.model)
        if operation not in spec.handlers:
            raise UnknownOperationError(f"{operation} is not implemented by mailcrate")
        op_model = spec.model.operation_model(operation)
        params = spec.protocol.parse(request, op_model)
        region = spec.global_region or (info.region if info else region)
        output = invoke(
            runtime.context,
            principal,
            spec.name,
            operation,
            params,
            region=region,
            request=request,
            request_id=request_id,
        )
        if isinstance(output, HttpResponse):  # services that stream (S3 GetObject) answer directly
            response = output
        else:
            response = spec.protocol.serialize(op_model, output, request_id)
    except ServiceError as exc:
        response = _render_error(exc, spec, request_id)
        error = exc
        if isinstance(exc, ServiceUnavailable):
            _log_unavailable(spec, operation, exc, request_id)
    except Exception as exc:
        unavailable = unavailable_error(exc)  # e.g. the key lookup found the database down
        if unavailable is not None:
            response = _render_error(unavailable, spec, request_id)
            _log_unavailable(spec, operation, unavailable, request_id)
            error = unavailable
        else:
            log.exception(
                "internal error in %s.%s (request %s)", spec.name if spec else "?", operation, request_id
            )
            error = InternalFailure("We encountered an internal error. Please try again.")
            response = _render_error(error, spec, request_id)
    elapsed_ms = (time.perf_counter() - started) * 1000
    observe.finished(runtime, request, request_id, spec, operation, principal, region, params, output,
                     error, response.status, elapsed_ms / 1000)  # fmt: skip
    log.info(
        "%s %s.%s -> %d %.1fms %s",
        request.method,
        spec.name if spec else "-",
        operation,
        response.status,
        elapsed_ms,
        request_id,
    )
    return response
