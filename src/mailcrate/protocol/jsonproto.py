"""The AWS ``json`` protocol (awsJson1.0/1.1): WorkMail and KMS speak it.

Requests are ``POST /`` with ``X-Amz-Target: <Prefix>.<Operation>`` and a JSON body; responses are
JSON bodies; errors carry ``__type`` and ``message`` (and the ``x-amzn-ErrorType`` header), which
is what botocore's parser reads to raise the right ``ClientError`` code. Types follow the model:
timestamps are epoch seconds, blobs base64.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.model import OperationModel, ServiceModel, Shape

from mailcrate.protocol.errors import SerializationError, ServiceError, UnknownOperationError
from mailcrate.protocol.http import HttpRequest, HttpResponse

JSON_CONTENT_TYPES = {"application/x-amz-json-1.0", "application/x-amz-json-1.1", "application/json"}


class JsonProtocol:
    name = "json"
    # Authentication failures as AWS's JSON services name them (see mailcrate.protocol.sigv4).
    auth_error_codes = {
        "missing": "MissingAuthenticationTokenException",
        "unknown-key": "UnrecognizedClientException",
        "signature": "InvalidSignatureException",
        "skew": "InvalidSignatureException",
        "expired": "ExpiredTokenException",
        "incomplete": "IncompleteSignatureException",
    }
    access_denied_code = "AccessDeniedException"
    access_denied_status = 400

    def __init__(self) -> None:
        self._encoders: dict[str, Encoder] = {}

    def operation_name(self, request: HttpRequest, service: ServiceModel) -> str:
        target = request.headers.get("x-amz-target") or ""
        prefix, _, operation = target.rpartition(".")  # CloudTrail's prefix has dots in it
        if request.method != "POST" or prefix != service.metadata.get("targetPrefix") or not operation:
            raise UnknownOperationError(f"Operation {target or '(none)'} is not supported by this service")
        if operation not in service.operation_names:
            raise UnknownOperationError(f"Operation {operation} is not supported by {service.service_name}")
        return operation

    def parse(self, request: HttpRequest, operation: OperationModel) -> dict[str, Any]:
        if request.content_type not in JSON_CONTENT_TYPES:
            raise SerializationError(
                f"Content-Type {request.content_type or '(none)'} is not supported; use application/x-amz-json-1.1"
            )
        if not request.body.strip():
            document: Any = {}
        else:
            try:
                document = json.loads(request.body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise SerializationError(f"Request body is not valid JSON: {exc}") from None
            except RecursionError:  # nesting deeper than the decoder's recursion limit (~1,000)
                raise SerializationError("Request body is nested too deeply") from None
        if not isinstance(document, dict):
            raise SerializationError("Request body must be a JSON object")
        shape = operation.input_shape
        return _decode_structure(shape, document, "") if shape is not None else {}

    def serialize(self, operation: OperationModel, output: dict[str, Any], request_id: str) -> HttpResponse:
        document = self._encoder(operation)(output)
        return HttpResponse(
            200, self._headers(request_id), json.dumps(document, separators=(",", ":")).encode()
        )

    def serialize_error(
        self, error: ServiceError, service: ServiceModel | None, request_id: str
    ) -> HttpResponse:
        document = {"__type": error.code, "message": error.message, **error.fields}
        headers = [*self._headers(request_id), ("x-amzn-ErrorType", error.code)]
        return HttpResponse(error.status, headers, json.dumps(document, default=str).encode())

    def _encoder(self, operation: OperationModel) -> Encoder:
        key = f"{operation.service_model.service_name}.{operation.name}"
        encoder = self._encoders.get(key)
        if encoder is None:
            shape = operation.output_shape
            compiled = compile_encoder(shape) if shape is not None else None
            encoder = compiled or (lambda value: {})
            self._encoders[key] = encoder
        return encoder

    @staticmethod
    def _headers(request_id: str) -> list[tuple[str, str]]:
        return [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", request_id)]


def _type_error(path: str, expected: str, value: Any) -> SerializationError:
    where = path or "the request"
    return SerializationError(f"Expected {expected} at {where}, got {type(value).__name__}")


def _decode(shape: Shape, value: Any, path: str) -> Any:
    """Check a JSON value's type against the model and turn it into the Python value."""
    if value is None:
        return None
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise _type_error(path, "an object", value)
        return _decode_structure(shape, value, path)
    if kind == "list":
        if not isinstance(value, list):
            raise _type_error(path, "a list", value)
        return [_decode(shape.member, item, f"{path}[{i}]") for i, item in enumerate(value)]
    if kind == "map":
        if not isinstance(value, dict):
            raise _type_error(path, "an object", value)
        return {_decode(shape.key, k, path): _decode(shape.value, v, f"{path}.{k}") for k, v in value.items()}
    if kind == "string":
        if not isinstance(value, str):
            raise _type_error(path, "a string", value)
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _type_error(path, "a boolean", value)
        return value
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(path, "an integer", value)
        return value
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(path, "a number", value)
        return float(value)
    if kind == "timestamp":
        return _decode_timestamp(value, path)
    if kind == "blob":
        if not isinstance(value, str):
            raise _type_error(path, "a base64 string", value)
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise SerializationError(f"Value at {path} is not valid base64") from None
    return value


def _decode_structure(shape: Shape, value: dict[str, Any], path: str) -> dict[str, Any]:
    # Members the model does not know are ignored, as AWS's JSON front end does.
    result: dict[str, Any] = {}
    for name, member in shape.members.items():
        if name in value:
            decoded = _decode(member, value[name], f"{path}.{name}" if path else name)
            if decoded is not None:
                result[name] = decoded
    return result


def _decode_timestamp(value: Any, path: str) -> datetime:
    if isinstance(value, bool):
        raise _type_error(path, "a timestamp", value)
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise _type_error(path, "a timestamp", value)
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise SerializationError(f"Timestamp at {path} is out of range") from None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise SerializationError(f"Value at {path} is not a timestamp") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise _type_error(path, "a timestamp", value)


Encoder = Callable[[Any], Any]


def _pending(value: Any) -> Any:
    raise AssertionError("an encoder ran before its shape was compiled")


_PENDING: Encoder = _pending


def compile_encoder(shape: Shape, memo: dict[str, Encoder | None] | None = None) -> Encoder | None:
    """Build, once per shape, the function that renders a value as the model's JSON.

    Walking botocore's shape objects on every response costs more than the rest of a call
    (``Shape.members`` resolves its members anew each time), so the walk happens once and
    responses run the compiled closures. ``None`` means "the value is already JSON as it is".
    Members not in the model are dropped.
    """
    memo = {} if memo is None else memo
    key = f"{shape.type_name}:{shape.name}"
    if key in memo:
        done = memo[key]
        if done is not _PENDING:  # a shape used twice (StartTime and EndTime are both Timestamp)
            return done
        # A recursive shape, still being compiled: resolve lazily through the memo.
        return lambda value: (memo[key] or _identity)(value)
    memo[key] = _PENDING
    kind = shape.type_name
    encoder: Encoder | None = None
    if kind == "structure":
        members = [(name, compile_encoder(member, memo)) for name, member in shape.members.items()]

        def encoder(value: Any) -> Any:
            out = {}
            for name, sub in members:
                item = value.get(name)
                if item is not None:
                    out[name] = item if sub is None else sub(item)
            return out

    elif kind == "list":
        sub = compile_encoder(shape.member, memo)
        encoder = list if sub is None else (lambda value: [sub(item) for item in value])
    elif kind == "map":
        sub = compile_encoder(shape.value, memo)
        encoder = dict if sub is None else (lambda value: {k: sub(v) for k, v in value.items()})
    elif kind == "timestamp":
        encoder = _encode_timestamp
    elif kind == "blob":
        encoder = _encode_blob
    memo[key] = encoder
    return encoder


def _identity(value: Any) -> Any:
    return value


_EPOCH = datetime(1970, 1, 1)


def _encode_timestamp(value: Any) -> Any:
    """Epoch seconds, to the millisecond. A naive datetime is UTC (SQLite hands them back so);
    subtracting the naive epoch gives the same float as ``replace(tzinfo=UTC).timestamp()``
    at a third of the cost, which counts with two timestamps per job in a List page."""
    if value.__class__ is datetime and value.tzinfo is None:
        return round((value - _EPOCH).total_seconds(), 3)
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return round(stamp.timestamp(), 3)
    return value


def _encode_blob(value: Any) -> str:
    return base64.b64encode(value).decode("ascii")
