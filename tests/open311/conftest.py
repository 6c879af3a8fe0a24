"""Open311 helpers: keys made as `gridrider apikey create` makes them, requests in JSON and XML, XML read back."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import Any

import msgspec
import pytest
from shapely.geometry import shape

from gridrider.domain.demo_geography import zhangwu_demo_areas
from gridrider.open311.formats import ITEM_TAGS
from gridrider.open311.keys import create_key, revoke_key

BASE = "/open311/v2"
GRID = "ZW-ZWZ-C02-G03"  # in community C02, the area of the `hotline` key
FOREIGN_GRID = "ZW-ZWZ-C07-G08"  # in community C07: outside that key's area
_AREAS = {a.code: shape(a.polygon) for a in zhangwu_demo_areas()}


def point_in(code: str) -> tuple[float, float]:
    """(lat, lon) well inside an area."""
    p = _AREAS[code].representative_point()
    return p.y, p.x


HERE = point_in(GRID)
THERE = point_in(FOREIGN_GRID)


def north(point: tuple[float, float], metres: float) -> tuple[float, float]:
    return point[0] + metres / 111_320, point[1]


def east(point: tuple[float, float], metres: float) -> tuple[float, float]:
    return point[0], point[1] + metres / (111_320 * math.cos(math.radians(point[0])))


class Key(msgspec.Struct):
    key: str
    name: str
    id: int
    member_id: int


@pytest.fixture
def make_key(db, settings, clock, demo):
    async def make(name: str, area: str) -> Key:
        async with db.acquire() as conn, conn.transaction():
            created = await create_key(conn, name=name, area_code=area, secret=settings.session_secret,
                                       now=clock.now())
        return Key(key=created.key, name=name, id=created.row.id, member_id=created.row.member_id)

    return make


@pytest.fixture
async def hotline(make_key) -> Key:
    """The 12345 hotline's key for community ZW-ZWZ-C02."""
    return await make_key("12345-hotline", "ZW-ZWZ-C02")


@pytest.fixture
async def foreign_key(make_key) -> Key:
    """A city system of community ZW-ZWZ-C07."""
    return await make_key("c07-platform", "ZW-ZWZ-C07")


async def revoke(db, clock, name: str) -> None:
    async with db.acquire() as conn, conn.transaction():
        await revoke_key(conn, name=name, now=clock.now())


def request_form(key: Key | None, point=HERE, **fields: Any) -> dict[str, str]:
    form = {"service_code": "garbage_pileup", "lat": str(point[0]), "long": str(point[1]),
            "description": "小区门口垃圾堆了三天"}
    if key is not None:
        form["api_key"] = key.key
    form.update({k: v for k, v in fields.items() if v is not ...})
    return {k: v for k, v in form.items() if v is not None}


async def post_request(client, key: Key | None, fmt: str = "json", point=HERE, **fields: Any):
    return await client.post(f"{BASE}/requests.{fmt}", data=request_form(key, point, **fields))


# ── reading both formats ────────────────────────────────────────────────────────────────────────────

def parse_xml(content: bytes) -> ET.Element:
    assert content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>'), content[:80]
    return ET.fromstring(content)


def xml_plain(element: ET.Element) -> Any:
    """An XML document as the JSON the spec's Spark convention maps it to, every leaf as text (None if empty)."""
    if element.tag in ITEM_TAGS:
        assert all(child.tag == ITEM_TAGS[element.tag] for child in element), element.tag
        return [xml_plain(child) for child in element]
    if len(element):
        tags = [child.tag for child in element]
        assert len(tags) == len(set(tags)), f"repeated elements in {element.tag}: {tags}"
        return {child.tag: xml_plain(child) for child in element}
    return element.text


def as_text(value: Any) -> Any:
    """JSON values as XML carries them: text, with null as an empty element."""
    if isinstance(value, dict):
        return {k: as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_text(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return None
    return str(value)


async def both(client, path: str, **kwargs) -> tuple[Any, ET.Element]:
    """GET `path` as .json and .xml; both 200, the right types, and the same content."""
    as_json = await client.get(f"{BASE}/{path}.json", **kwargs)
    as_xml = await client.get(f"{BASE}/{path}.xml", **kwargs)
    assert as_json.status_code == 200, as_json.text
    assert as_xml.status_code == 200, as_xml.text
    assert as_json.headers["content-type"] == "application/json; charset=utf-8"
    assert as_xml.headers["content-type"] == "text/xml; charset=utf-8"
    root = parse_xml(as_xml.content)
    assert xml_plain(root) == as_text(as_json.json())
    return as_json.json(), root


def errors_of(reply) -> list[dict]:
    """The spec's error list from a reply in either format (never problem+json)."""
    assert "problem" not in reply.headers["content-type"], reply.text
    if reply.headers["content-type"].startswith("text/xml"):
        root = parse_xml(reply.content)
        assert root.tag == "errors"
        return [{"code": int(e.findtext("code")), "description": e.findtext("description")} for e in root]
    body = reply.json()
    assert isinstance(body, list) and body, body
    assert all(set(e) == {"code", "description"} for e in body), body
    return body


def assert_error(reply, status: int, *fragments: str) -> None:
    assert reply.status_code == status, reply.text
    errors = errors_of(reply)
    assert all(e["code"] == status for e in errors), errors
    text = " | ".join(e["description"] for e in errors)
    for fragment in fragments:
        assert fragment in text, text
