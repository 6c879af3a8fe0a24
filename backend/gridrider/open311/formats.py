"""One body, two renderings: the spec's JSON and its (mandatory) XML, plus the GeoReport v2 error list.

Bodies are plain dicts and lists whose keys are the spec's field names. JSON follows the spec's
"Spark convention" (a list is a JSON array); XML wraps each list item in the element the spec names
for it (`services` holds `service`, `service_requests` holds `request`, …). `None` is JSON `null`
and an empty XML element, as in the spec's examples.

XML is written with ElementTree, which escapes `&`, `<` and `>`; characters XML 1.0 cannot carry at
all (most control characters, U+FFFE/U+FFFF) would still make the document ill-formed, so every
string is cleaned first — in both formats, so JSON and XML say the same.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from typing import Any

import msgspec

from gridrider.clock import SHANGHAI

JSON, XML = "json", "xml"
# Litestar appends "; charset=utf-8" to text/* types itself; both answer as the spec's headers show.
MEDIA_TYPES = {JSON: "application/json; charset=utf-8", XML: "text/xml"}
# The spec asks for a declaration naming UTF-8 before the root element.
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'

# list element → the element each of its items becomes
ITEM_TAGS = {
    "services": "service",
    "service_requests": "request",
    "service_request_updates": "request_update",
    "errors": "error",
    "endpoints": "endpoint",
    "formats": "format",
    "attributes": "attribute",
    "values": "value",
}

# Anything outside XML 1.0's Char production.
_NOT_XML_CHAR = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def format_of(path: str) -> str | None:
    """'json' or 'xml' from a resource path's extension (`services.json`), else None."""
    _, dot, extension = path.rpartition("/")[2].rpartition(".")
    return extension if dot and extension in MEDIA_TYPES else None


def w3_datetime(when: dt.datetime) -> str:
    """A W3C-profile ISO 8601 time with its offset, in Asia/Shanghai as people there read it."""
    return when.astimezone(SHANGHAI).isoformat(timespec="seconds")


def clean_text(text: str) -> str:
    return _NOT_XML_CHAR.sub("\ufffd", text)


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return w3_datetime(value)
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _element(tag: str, value: Any) -> ET.Element:
    element = ET.Element(tag)
    if isinstance(value, list):
        item_tag = ITEM_TAGS[tag]
        element.extend(_element(item_tag, item) for item in value)
    elif isinstance(value, dict):
        element.extend(_element(key, item) for key, item in value.items())
    elif isinstance(value, bool):  # before int: bool is an int
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = str(value)
    return element


def render(fmt: str, root: str, body: list[Any] | dict[str, Any]) -> bytes:
    """`body` as the bytes of a `fmt` document; `root` names the XML root element (`services`, `errors`, …)."""
    plain = _plain(body)
    if fmt == JSON:
        return msgspec.json.encode(plain)
    return XML_DECLARATION + ET.tostring(_element(root, plain), encoding="unicode").encode("utf-8")


def error_body(status: int, descriptions: list[str]) -> list[dict[str, Any]]:
    """The spec's errors list; `code` is the HTTP status, as in the spec's own example."""
    return [{"code": status, "description": description} for description in descriptions]
