"""What a service is to the server: a botocore model, a protocol and a table of handlers.

Handlers are plain functions ``(Call) -> dict``: they receive already authenticated, parsed and
validated input and return the output shape as Python values; the protocol serializes it. They
signal failures by raising :class:`mailcrate.protocol.errors.ServiceError` subclasses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from botocore.model import OperationModel, ServiceModel

from mailcrate.accounts import Principal
from mailcrate.protocol.errors import ServiceError
from mailcrate.protocol.http import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from mailcrate.services.context import ServiceContext


class WireProtocol(Protocol):
    """One AWS protocol (json, query, rest-xml): request parsing and response rendering."""

    name: str
    auth_error_codes: Mapping[str, str]
    access_denied_code: str
    access_denied_status: int

    def operation_name(self, request: HttpRequest, service: ServiceModel) -> str: ...

    def parse(self, request: HttpRequest, operation: OperationModel) -> dict[str, Any]: ...

    def serialize(
        self, operation: OperationModel, output: dict[str, Any], request_id: str
    ) -> HttpResponse: ...

    def serialize_error(
        self, error: ServiceError, service: ServiceModel | None, request_id: str
    ) -> HttpResponse: ...


@dataclass(frozen=True)
class Call:
    """One authenticated API call on its way to a handler."""

    service: str
    operation: str
    params: dict[str, Any]
    principal: Principal
    region: str
    request_id: str
    # The HTTP request the call came in (its client address, scheme and headers count for
    # conditions); in-process calls carry a synthetic one (see services.invoke).
    request: HttpRequest
    context: ServiceContext
    # The AWS service (e.g. "workmail.amazonaws.com") making this call with the principal's
    # credentials on the principal's behalf: aws:CalledVia / aws:ViaAWSService say so.
    on_behalf_of_service: str | None = None
    # An in-process caller's fencing check (see :meth:`guard_write`); HTTP calls carry none.
    write_guard: WriteGuard | None = None

    @property
    def account_id(self) -> str:
        return self.principal.account_id

    def guard_write(self, conn: Any) -> None:
        """Run the caller's fencing check in the transaction that commits this call's write, so
        a write of an attempt that lost its job cannot land (an export's late UploadPart or
        PutObject after another attempt took the job over). The guard raises to refuse."""
        if self.write_guard is not None:
            self.write_guard(conn, self.operation, self.params)

    def authorize(self, action: str, resource: str, context: Mapping[str, Any] | None = None) -> None:
        """Resource-level authorization for handlers that know the resource only after lookup."""
        self.context.authorizer.check(self, action, resource, context or {})


Handler = Callable[[Call], dict[str, Any]]
#: ``(connection, operation, params)``; raises to refuse the write (see :meth:`Call.guard_write`).
WriteGuard = Callable[[Any, str, dict[str, Any]], None]


@dataclass(frozen=True)
class ServiceSpec:
    name: str  # the SigV4 signing name, e.g. "workmail"
    model: ServiceModel
    protocol: WireProtocol
    handlers: Mapping[str, Handler]
    validation_error_code: str = "ValidationException"
    # The query-protocol services (IAM, STS) apply their models' patterns to the whole value.
    anchored_patterns: bool = False
    # Global services (IAM) answer in one region whatever the client signed for.
    global_region: str | None = None
    # The resource ARN the generic authorization check uses; "*" when the handler checks itself.
    resource_for: Callable[[Call], str] = field(default=lambda call: "*")
    # The IAM action of the generic check; returning None skips it (the handler authorizes
    # itself, e.g. S3: s3:PutObject for CreateMultipartUpload, plus the bucket policy).
    action_for: Callable[[Call], str | None] | None = None

    @property
    def action_prefix(self) -> str:
        return self.model.signing_name or self.name
