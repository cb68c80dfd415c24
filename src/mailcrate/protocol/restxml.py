"""The AWS ``rest-xml`` protocol as S3 speaks it, driven by the botocore model.

* Operations are matched from method, path shape and query: literal sub-resources in the model's
  ``requestUri`` (``?uploads``, ``?list-type=2``, ``?policyStatus``...) and required query and
  header members (``uploadId``, ``partNumber``, ``x-amz-copy-source``); the most specific wins.
* Buckets are addressed path-style (``/bucket/key``) or virtual-host-style
  (``bucket.localhost:port``, ``bucket.s3.localhost``, ``bucket.s3.amazonaws.com``).
* Members bind to the URI, query string, headers, ``x-amz-meta-*`` and the payload: XML bodies are
  parsed and rendered from the model shapes; a streaming blob payload is handed to the handler
  as a stream object made by ``payload_factory`` (never read whole here).
* Errors are S3's ``<Error><Code/><Message/><RequestId/>...</Error>``; HEAD answers carry none.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from functools import cache
from typing import Any
from urllib.parse import unquote_to_bytes
from xml.sax.saxutils import escape

from botocore.model import OperationModel, ServiceModel, Shape

from mailcrate.protocol.errors import ServiceError, UnknownOperationError
from mailcrate.protocol.http import HttpRequest, HttpResponse

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_XML_BODY = 4 * 1024 * 1024
_VHOST_SUFFIXES = (".s3.localhost", ".localhost", ".s3.amazonaws.com")
_VHOST_REGION_RE = re.compile(r"^(?P<bucket>.+)\.s3[.-][a-z0-9-]+\.amazonaws\.com$")
_IP_RE = re.compile(r"^[0-9.]+$|^\[.*\]$")
_INT_LIMITS = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
# Characters XML 1.0 cannot carry at all (a key may hold them: GET /bucket/a%01b).
_XML_INVALID = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class MalformedXML(ServiceError):
    code = "MalformedXML"

    def __init__(self) -> None:
        super().__init__(
            "The XML you provided was not well-formed or did not validate against our published schema"
        )


class InvalidURI(ServiceError):
    code = "InvalidURI"

    def __init__(self) -> None:
        super().__init__("Couldn't parse the specified URI.")


class InvalidArgument(ServiceError):
    code = "InvalidArgument"


@dataclass(frozen=True)
class Address:
    bucket: str | None
    key: str | None


def address(request: HttpRequest) -> Address:
    """Bucket and key of a request, from the Host header or the path."""
    cached = getattr(request, "_s3_address", None)
    if cached is not None:
        return cached
    host = request.host.lower()
    hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    bucket: str | None = None
    if not _IP_RE.match(hostname):
        match = _VHOST_REGION_RE.match(hostname)
        if match:
            bucket = match["bucket"]
        else:
            for suffix in _VHOST_SUFFIXES:
                if hostname.endswith(suffix) and hostname[: -len(suffix)] not in ("", "s3"):
                    bucket = hostname[: -len(suffix)]
                    break
    path = request.raw_path or "/"
    if not path.startswith("/"):
        raise InvalidURI()
    if bucket is None:
        first, slash, rest = path[1:].partition("/")
        bucket = _decode(first) or None
        key = _decode(rest) if slash else None
    else:
        key = _decode(path[1:]) if len(path) > 1 else None
    result = Address(bucket, key or None)
    request.__dict__["_s3_address"] = result
    return result


def _decode(text: str) -> str:
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidURI() from None


@dataclass(frozen=True)
class _Route:
    name: str
    method: str
    shape: str  # "service", "bucket" or "object"
    literal: tuple[tuple[str, str | None], ...]
    required_query: tuple[str, ...]
    required_headers: tuple[str, ...]

    @property
    def score(self) -> int:
        return 10 * len(self.literal) + len(self.required_query) + len(self.required_headers)


@cache
def _routes(service: ServiceModel) -> tuple[tuple[_Route, ...], frozenset[str]]:
    routes = []
    subresources: set[str] = set()
    for name in service.operation_names:
        op = service.operation_model(name)
        uri = op.http["requestUri"]
        path, _, query = uri.partition("?")
        shape = "object" if "{Key+}" in path else "bucket" if "{Bucket}" in path else "service"
        literal = []
        for item in filter(None, query.split("&")):
            key, eq, value = item.partition("=")
            literal.append((key, value if eq else None))
            subresources.add(key)
        req_q, req_h = [], []
        if op.input_shape is not None:
            for member_name in op.input_shape.required_members:
                member = op.input_shape.members[member_name]
                loc = member.serialization.get("location")
                if loc == "querystring":
                    req_q.append(member.serialization["name"])
                elif loc == "header":
                    req_h.append(member.serialization["name"].lower())
        routes.append(_Route(name, op.http["method"], shape, tuple(literal), tuple(req_q), tuple(req_h)))
    return tuple(routes), frozenset(subresources)


class RestXmlProtocol:
    name = "rest-xml"
    auth_error_codes = {
        "missing": "AccessDenied",
        "unknown-key": "InvalidAccessKeyId",
        "signature": "SignatureDoesNotMatch",
        "skew": "RequestTimeTooSkewed",
        "expired": "AccessDenied",
        "incomplete": "AuthorizationHeaderMalformed",
    }
    access_denied_code = "AccessDenied"
    access_denied_status = 403

    def __init__(self, payload_factory: Callable[[HttpRequest], Any]) -> None:
        self.payload_factory = payload_factory

    # -- requests -------------------------------------------------------------------------
    def operation_name(self, request: HttpRequest, service: ServiceModel) -> str:
        where = address(request)
        shape = "object" if where.key is not None else "bucket" if where.bucket else "service"
        routes, subresources = _routes(service)
        query = request.query
        best: _Route | None = None
        for route in routes:
            if route.method != request.method or route.shape != shape:
                continue
            if any(k not in query or (v is not None and query[k] != v) for k, v in route.literal):
                continue
            if any(q not in query for q in route.required_query):
                continue
            if any(h not in request.headers for h in route.required_headers):
                continue
            if best is None or route.score > best.score:
                best = route
        if best is None:
            raise UnknownOperationError(
                f"{request.method} on this {shape} is not a supported S3 operation",
                code="MethodNotAllowed" if shape != "service" else "NotImplemented",
                status=405 if shape != "service" else 501,
            )
        consumed = {k for k, _ in best.literal}
        op = service.operation_model(best.name)
        if op.input_shape is not None:
            consumed |= {
                m.serialization.get("name")
                for m in op.input_shape.members.values()
                if m.serialization.get("location") == "querystring"
            }
        extra = (set(query) & subresources) - consumed - {"x-id"}
        if extra:
            raise ServiceError(
                f"The ?{sorted(extra)[0]} sub-resource is not implemented for {best.name}",
                code="NotImplemented",
                status=501,
            )
        return best.name

    def parse(self, request: HttpRequest, operation: OperationModel) -> dict[str, Any]:
        shape = operation.input_shape
        params: dict[str, Any] = {}
        if shape is None:
            return params
        where = address(request)
        payload_name = shape.serialization.get("payload")
        for name, member in shape.members.items():
            ser = member.serialization
            loc = ser.get("location")
            if loc == "uri":
                value = where.bucket if ser.get("name") == "Bucket" else where.key
                if value is not None:
                    params[name] = value
            elif loc == "querystring":
                if ser["name"] in request.query:
                    params[name] = _from_text(member, request.query[ser["name"]], "querystring")
            elif loc == "header":
                raw = request.headers.get(ser["name"])
                if raw is not None:
                    params[name] = _from_text(member, raw, "header")
            elif loc == "headers":
                prefix = ser["name"].lower()
                found = {k[len(prefix) :]: v for k, v in request.headers.items() if k.startswith(prefix)}
                if found:
                    params[name] = found
        if payload_name:
            member = shape.members[payload_name]
            if member.type_name == "blob":
                params[payload_name] = self.payload_factory(request)
            else:
                body = self.payload_factory(request).read_all(MAX_XML_BODY)
                if member.type_name == "structure":
                    if body.strip():
                        params[payload_name] = _parse_xml(member, body)
                elif body:
                    params[payload_name] = body.decode("utf-8", "replace")
        return params

    # -- responses ------------------------------------------------------------------------
    def serialize(self, operation: OperationModel, output: dict[str, Any], request_id: str) -> HttpResponse:
        # Handlers may pick the status (206 for ranges, 304 for conditional GETs).
        status = int(output.get("__status__") or operation.http.get("responseCode") or 200)
        headers = self._headers(request_id)
        shape = operation.output_shape
        body: Any = b""
        if shape is not None:
            payload_name = shape.serialization.get("payload")
            for name, member in shape.members.items():
                value = output.get(name)
                if value is None:
                    continue
                ser = member.serialization
                loc = ser.get("location")
                if loc == "header":
                    headers.append((ser["name"], _to_header(member, value)))
                elif loc == "headers":
                    headers.extend((ser["name"] + k, str(v)) for k, v in value.items())
                elif loc == "statusCode":
                    status = int(value)
            if payload_name:
                member = shape.members[payload_name]
                value = output.get(payload_name)
                if member.type_name == "structure":
                    if value is not None:
                        body = _render_document(
                            member, value, member.serialization.get("name") or member.name
                        )
                elif value is not None:
                    body = value.encode() if isinstance(value, str) else value
            else:
                body_members = {n: m for n, m in shape.members.items() if not m.serialization.get("location")}
                if operation.name == "GetBucketLocation":  # not modelable: the root's text is the value
                    value = output.get("LocationConstraint")
                    body = _render_document(
                        shape.members["LocationConstraint"], value or "", "LocationConstraint"
                    )
                elif body_members:
                    root = shape.serialization.get("name") or _root_name(operation)
                    body = _render_document(shape, output, root)
        if isinstance(body, bytes) and body[:5] == b"<?xml":
            headers.append(("Content-Type", "application/xml"))
        return HttpResponse(status, headers, body)

    def serialize_error(
        self, error: ServiceError, service: ServiceModel | None, request_id: str
    ) -> HttpResponse:
        code = error.code
        status = error.status
        if isinstance(error, UnknownOperationError) and code == "UnknownOperationException":
            code, status = "NotImplemented", 501
        parts = [f"<Code>{escape(code)}</Code>", f"<Message>{_error_text(error.message)}</Message>"]
        for key, value in error.fields.items():
            parts.append(f"<{key}>{_error_text(str(value))}</{key}>")
        parts.append(f"<RequestId>{request_id}</RequestId><HostId>{request_id}</HostId>")
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error>' + "".join(parts) + "</Error>").encode()
        headers = [*self._headers(request_id), ("Content-Type", "application/xml")]
        return HttpResponse(status, headers, body)

    @staticmethod
    def _headers(request_id: str) -> list[tuple[str, str]]:
        return [("x-amz-request-id", request_id), ("x-amz-id-2", request_id)]


_ROOT_NAMES = {
    "ListObjectsV2": "ListBucketResult",
    "ListObjects": "ListBucketResult",
    "ListObjectVersions": "ListVersionsResult",
    "ListBuckets": "ListAllMyBucketsResult",
    "CompleteMultipartUpload": "CompleteMultipartUploadResult",
    "CreateMultipartUpload": "InitiateMultipartUploadResult",
    "ListParts": "ListPartsResult",
    "ListMultipartUploads": "ListMultipartUploadsResult",
    "DeleteObjects": "DeleteResult",
    "GetBucketLocation": "LocationConstraint",
}


def _error_text(value: str) -> str:
    """Escaped for an error document, with what XML cannot carry replaced, so it always parses."""
    return escape(_XML_INVALID.sub("\ufffd", value))


def _root_name(operation: OperationModel) -> str:
    return _ROOT_NAMES.get(operation.name, operation.name + "Result")


# -- scalar conversions -----------------------------------------------------------------
def _from_text(shape: Shape, text: str, where: str) -> Any:
    kind = shape.type_name
    try:
        if kind in ("integer", "long"):
            number = int(text)
            low, high = _INT_LIMITS[kind]
            if not low <= number <= high:  # e.g. a part-number-marker SQLite cannot bind
                raise ValueError(text)
            return number
        if kind == "boolean":
            lowered = text.strip().lower()
            if lowered not in ("true", "false"):
                raise ValueError(text)
            return lowered == "true"
        if kind == "timestamp":
            return _parse_time(text)
        if kind == "list":
            return [item.strip() for item in text.split(",")]
    except (ValueError, TypeError, OverflowError):
        raise InvalidArgument(f"Invalid value {text[:100]!r} in the {where}") from None
    return text


def _parse_time(text: str) -> datetime:
    text = text.strip()
    try:
        value = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _to_header(shape: Shape, value: Any) -> str:
    if shape.type_name == "timestamp" and isinstance(value, datetime):
        return format_datetime(value.astimezone(UTC), usegmt=True)
    if shape.type_name == "boolean":
        return "true" if value else "false"
    return str(value)


def _to_text(shape: Shape, value: Any) -> str:
    if shape.type_name == "timestamp" and isinstance(value, datetime):
        moment = value.astimezone(UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    if shape.type_name == "boolean":
        return "true" if value else "false"
    return str(value)


# -- XML documents ----------------------------------------------------------------------
def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse_xml(shape: Shape, body: bytes) -> dict[str, Any]:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise MalformedXML() from None
    return _parse_structure(shape, root)


def _parse_structure(shape: Shape, element: ET.Element) -> dict[str, Any]:
    children: dict[str, list[ET.Element]] = {}
    for child in element:
        children.setdefault(_local(child.tag), []).append(child)
    result: dict[str, Any] = {}
    for name, member in shape.members.items():
        tag = member.serialization.get("name", name)
        if member.type_name == "list" and member.serialization.get("flattened"):
            items = children.get(tag, [])
            if items:
                result[name] = [_parse_value(member.member, item) for item in items]
            continue
        found = children.get(tag)
        if found:
            result[name] = _parse_value(member, found[0])
    return result


def _parse_value(shape: Shape, element: ET.Element) -> Any:
    kind = shape.type_name
    if kind == "structure":
        return _parse_structure(shape, element)
    if kind == "list":
        tag = shape.member.serialization.get("name", "member")
        return [_parse_value(shape.member, child) for child in element if _local(child.tag) == tag]
    text = element.text or ""
    if kind in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            raise MalformedXML() from None
    if kind == "boolean":
        if text.strip() not in ("true", "false"):
            raise MalformedXML()
        return text.strip() == "true"
    if kind == "timestamp":
        try:
            return _parse_time(text)
        except ValueError:
            raise MalformedXML() from None
    return text


def _render_document(shape: Shape, value: Any, root: str) -> bytes:
    parts: list[str] = ['<?xml version="1.0" encoding="UTF-8"?>\n']
    if shape.type_name == "structure":
        parts.append(f'<{root} xmlns="{S3_NS}">')
        _render_members(shape, value, parts)
        parts.append(f"</{root}>")
    else:
        parts.append(f'<{root} xmlns="{S3_NS}">{escape(_to_text(shape, value))}</{root}>')
    return "".join(parts).encode("utf-8")


def _render_members(shape: Shape, value: dict[str, Any], parts: list[str]) -> None:
    for name, member in shape.members.items():
        item = value.get(name)
        if item is None or member.serialization.get("location"):
            continue
        tag = member.serialization.get("name", name)
        if member.type_name == "list" and member.serialization.get("flattened"):
            for element in item:
                _render_value(member.member, element, tag, parts)
        else:
            _render_value(member, item, tag, parts)


def _render_value(shape: Shape, value: Any, tag: str, parts: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        parts.append(f"<{tag}>")
        _render_members(shape, value, parts)
        parts.append(f"</{tag}>")
    elif kind == "list":
        inner = shape.member.serialization.get("name", "member")
        parts.append(f"<{tag}>")
        for element in value:
            _render_value(shape.member, element, inner, parts)
        parts.append(f"</{tag}>")
    else:
        parts.append(f"<{tag}>{escape(_to_text(shape, value))}</{tag}>")
