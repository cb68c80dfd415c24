"""The AWS ``query`` protocol: IAM and STS speak it.

Requests are form-encoded (``POST /`` with ``application/x-www-form-urlencoded``, or ``GET`` with
the same parameters in the query string): ``Action=<Operation>&Version=<apiVersion>`` plus the
input members, flattened the way botocore's ``QuerySerializer`` writes them::

    Tags.member.1.Key=k          list (``member``, or the member's locationName; flattened
    Attributes.entry.1.key=k     lists and maps drop the ``member``/``entry`` level) and map
    Filter.Name=n                nested structure members joined with dots

Responses are XML documents ``<OpResponse xmlns=NS><OpResult>...</OpResult><ResponseMetadata>
<RequestId>..</RequestId></ResponseMetadata></OpResponse>`` built from the model (resultWrapper,
xmlNamespace, locationName, flattened); errors are ``<ErrorResponse><Error><Type>Sender</Type>
<Code>..</Code><Message>..</Message></Error><RequestId>..</RequestId></ErrorResponse>``, which is
exactly what botocore's ``QueryParser`` reads.

Form values are strings; they are converted to the model's types here (integers, booleans,
timestamps, blobs) and a value that does not convert is a validation error in the service's own
code. Query services anchor their patterns (``[\\w+=,.@-]+`` means the *whole* role name), so on
top of the generic checks of :mod:`mailcrate.protocol.validate` patterns must match in full.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl
from xml.etree import ElementTree as ET

from botocore.model import OperationModel, ServiceModel, Shape

from mailcrate.protocol.errors import ServiceError, UnknownOperationError, ValidationError
from mailcrate.protocol.http import HttpRequest, HttpResponse
from mailcrate.protocol.validate import validate

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
MAX_LIST_ITEMS = 10_000  # far above any model's own limit; bounds work on hostile input
_INTEGER = re.compile(r"^[+-]?[0-9]{1,20}$")
_INT_LIMITS = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
# Characters XML 1.0 cannot carry at all; replaced so every response parses.
_XML_INVALID = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_LEAF = None  # key of a node's own value in the parameter tree (never a form key segment)


class InvalidAction(UnknownOperationError):
    code = "InvalidAction"


class MissingAction(UnknownOperationError):
    code = "MissingAction"


class QueryProtocol:
    name = "query"
    # Authentication failures as AWS's query services (IAM, STS) name them.
    auth_error_codes = {
        "missing": "MissingAuthenticationToken",
        "unknown-key": "InvalidClientTokenId",
        "signature": "SignatureDoesNotMatch",
        "skew": "SignatureDoesNotMatch",
        "expired": "ExpiredToken",
        "incomplete": "IncompleteSignature",
    }
    access_denied_code = "AccessDenied"
    access_denied_status = 403

    def __init__(self, validation_error_code: str = "ValidationError") -> None:
        self.validation_error_code = validation_error_code

    # --- requests ---------------------------------------------------------------------------
    @staticmethod
    def form(request: HttpRequest) -> list[tuple[str, str]]:
        """The request's parameters: the form body for POST, else the query string."""
        if request.method == "POST" and request.content_type == FORM_CONTENT_TYPE:
            text = request.body.decode("utf-8", "replace")
            pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="replace")
        else:
            pairs = list(request.query_params)
        # Presigned-URL authentication parameters are not input members.
        return [(k, v) for k, v in pairs if not k.startswith("X-Amz-")]

    def operation_name(self, request: HttpRequest, service: ServiceModel) -> str:
        action = dict(self.form(request)).get("Action")
        if not action:
            raise MissingAction("The request must contain the parameter Action")
        if action not in service.operation_names:
            version = service.metadata.get("apiVersion", "")
            raise InvalidAction(f"Could not find operation {action[:100]} for version {version}")
        return action

    def parse(self, request: HttpRequest, operation: OperationModel) -> dict[str, Any]:
        shape = operation.input_shape
        if shape is None:
            return {}
        tree: dict[str | None, Any] = {}
        for key, value in self.form(request):
            if key in ("Action", "Version"):
                continue
            node = tree
            for part in key.split("."):
                node = node.setdefault(part, {})
            node.setdefault(_LEAF, value)  # the first of repeated parameters wins
        problems: list[str] = []
        params = _decode_structure(shape, tree, "", problems)
        if not problems:
            problems = validate(shape, params, anchored=True)
        if problems:
            raise ValidationError.from_problems(problems, self.validation_error_code)
        return params

    # --- responses --------------------------------------------------------------------------
    def serialize(self, operation: OperationModel, output: dict[str, Any], request_id: str) -> HttpResponse:
        namespace = operation.metadata.get("xmlNamespace")
        root = ET.Element(f"{operation.name}Response", _ns(namespace))
        shape = operation.output_shape
        if shape is not None:
            wrapper = shape.serialization.get("resultWrapper")
            parent = ET.SubElement(root, wrapper) if wrapper else root
            _encode_members(parent, shape, output)
        metadata = ET.SubElement(root, "ResponseMetadata")
        ET.SubElement(metadata, "RequestId").text = request_id
        return HttpResponse(200, _headers(request_id), _document(root))

    def serialize_error(
        self, error: ServiceError, service: ServiceModel | None, request_id: str
    ) -> HttpResponse:
        namespace = service.metadata.get("xmlNamespace") if service is not None else None
        root = ET.Element("ErrorResponse", _ns(namespace))
        node = ET.SubElement(root, "Error")
        ET.SubElement(node, "Type").text = "Sender" if error.sender_fault else "Receiver"
        ET.SubElement(node, "Code").text = _text(error.code)
        ET.SubElement(node, "Message").text = _text(error.message)
        for name, value in error.fields.items():
            if value is not None:
                ET.SubElement(node, name).text = _text(_scalar(value))
        ET.SubElement(root, "RequestId").text = request_id
        return HttpResponse(error.status, _headers(request_id), _document(root))


# --- form -> Python values ----------------------------------------------------------------------
def _member_path(parent: str, name: str) -> str:
    name = name[:1].lower() + name[1:]
    return f"{parent}.{name}" if parent else name


def _conversion_problem(value: str, path: str, kind: str) -> str:
    shown = value[:200]
    return f"Value '{shown}' at '{path}' failed to satisfy constraint: Member must be of type {kind}"


def _decode_structure(shape: Shape, node: dict[str, Any], path: str, problems: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, member in shape.members.items():
        key = member.serialization.get("name", name)
        if member.type_name == "list" and member.serialization.get("flattened"):
            key = member.member.serialization.get("name", key)
        child = node.get(key)
        if child is None:
            continue
        value = _decode(member, child, _member_path(path, name), problems)
        if value is not None:
            result[name] = value
    return result


def _indexed(node: dict[str, Any]) -> list[dict[str, Any]]:
    """Children named 1, 2, ... in index order (AWS numbers from 1; gaps are tolerated)."""
    items = sorted(
        (int(key), child)
        for key, child in node.items()
        if isinstance(key, str) and key.isascii() and key.isdigit() and len(key) <= 6 and int(key) >= 1
    )
    return [child for _, child in items[:MAX_LIST_ITEMS]]


def _decode(shape: Shape, node: dict[str, Any], path: str, problems: list[str]) -> Any:
    kind = shape.type_name
    if kind == "structure":
        return _decode_structure(shape, node, path, problems)
    if kind == "list":
        if shape.serialization.get("flattened"):
            holder = node
        else:
            holder = node.get(shape.member.serialization.get("name", "member"), {})
        items = _indexed(holder)
        if not items and _LEAF not in node and not holder:
            return None
        return [
            _present(
                _decode(shape.member, item, f"{path}.{i}.member", problems),
                item,
                f"{path}.{i}.member",
                problems,
            )
            for i, item in enumerate(items, 1)
        ]
    if kind == "map":
        holder = node if shape.serialization.get("flattened") else node.get("entry", {})
        key_name = shape.key.serialization.get("name", "key")
        value_name = shape.value.serialization.get("name", "value")
        result: dict[Any, Any] = {}
        for entry in _indexed(holder):
            if key_name not in entry:
                continue
            key = _decode(shape.key, entry[key_name], f"{path}.key", problems)
            item = entry.get(value_name, {_LEAF: ""})
            value = _present(
                _decode(shape.value, item, f"{path}.value", problems), item, f"{path}.value", problems
            )
            if key is not None:
                result[key] = value
        return result
    text = node.get(_LEAF)
    if text is None:
        return None
    return _scalar_from_text(shape, text, path, problems)


def _present(value: Any, node: dict[str, Any], path: str, problems: list[str]) -> Any:
    """A list item or map value must have a value: ``Keys.member.1.x=y`` names only a deeper key,
    so the item itself is null (reported here, never handed on to validation or a handler)."""
    if value is None and _LEAF not in node:
        problems.append(f"Value null at '{path}' failed to satisfy constraint: Member must not be null")
    return value


def _scalar_from_text(shape: Shape, text: str, path: str, problems: list[str]) -> Any:
    kind = shape.type_name
    if kind == "string":
        return text
    if kind in ("integer", "long"):
        low, high = _INT_LIMITS[kind]
        if _INTEGER.match(text.strip()) and low <= int(text) <= high:
            return int(text)
        problems.append(_conversion_problem(text, path, kind))
        return None
    if kind == "boolean":
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        problems.append(_conversion_problem(text, path, "boolean"))
        return None
    if kind in ("float", "double"):
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return number
        problems.append(_conversion_problem(text, path, kind))
        return None
    if kind == "timestamp":
        moment = _parse_timestamp(text)
        if moment is None:
            problems.append(_conversion_problem(text, path, "timestamp"))
        return moment
    if kind == "blob":
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            problems.append(_conversion_problem("[binary]", path, "base64-encoded binary"))
            return None
    return text


def _parse_timestamp(text: str) -> datetime | None:
    text = text.strip()
    try:
        if re.fullmatch(r"\d{1,12}(\.\d+)?", text):
            return datetime.fromtimestamp(float(text), UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- Python values -> XML -----------------------------------------------------------------------
def _ns(namespace: str | None) -> dict[str, str]:
    return {"xmlns": namespace} if namespace else {}


def _headers(request_id: str) -> list[tuple[str, str]]:
    return [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]


def _document(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _text(value: str) -> str:
    return _XML_INVALID.sub("\ufffd", value)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _encode_members(parent: ET.Element, shape: Shape, value: dict[str, Any]) -> None:
    for name, member in shape.members.items():
        item = value.get(name)
        if item is None:
            continue
        tag = member.serialization.get("name", name)
        if member.type_name == "list" and member.serialization.get("flattened"):
            element_tag = member.member.serialization.get("name", tag)
            for element in item:
                _encode_value(ET.SubElement(parent, element_tag), member.member, element)
        elif member.type_name == "map" and member.serialization.get("flattened"):
            for key, element in item.items():
                _encode_entry(ET.SubElement(parent, tag), member, key, element)
        else:
            _encode_value(ET.SubElement(parent, tag), member, item)


def _encode_entry(node: ET.Element, shape: Shape, key: Any, value: Any) -> None:
    _encode_value(ET.SubElement(node, shape.key.serialization.get("name", "key")), shape.key, key)
    _encode_value(ET.SubElement(node, shape.value.serialization.get("name", "value")), shape.value, value)


def _encode_value(node: ET.Element, shape: Shape, value: Any) -> None:
    kind = shape.type_name
    if kind == "structure":
        _encode_members(node, shape, value)
    elif kind == "list":
        tag = shape.member.serialization.get("name", "member")
        for element in value:
            _encode_value(ET.SubElement(node, tag), shape.member, element)
    elif kind == "map":
        for key, element in value.items():
            _encode_entry(ET.SubElement(node, "entry"), shape, key, element)
    else:
        node.text = _text(_scalar(value))
