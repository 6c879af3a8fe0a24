"""Text PostgreSQL cannot store (DESIGN §8: every input gets a clear 4xx, never a 500).

schemathesis found a NUL byte in DELETE /api/v1/push/subscriptions?endpoint= answering 500: PostgreSQL refuses
U+0000 in text, and nothing at the edge refuses it first. This test asks the same of every text input of every
route, deterministically: it takes the valid request the authorisation matrix sends for a case that succeeds,
and breaks one text value at a time — a JSON field, a query parameter, a form field, a report's `meta`
field, a path segment — with a NUL byte, and in JSON bodies also with a lone UTF-16 surrogate (valid JSON text,
not encodable as UTF-8). It reaches the multipart and form bodies the OpenAPI document does not describe.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
import pytest_asyncio

from tests.security.test_authz_matrix import BUILDERS, NONE, OK, ROLES, TABLE, Call, Ctx, expected
from tests.security.world import build_world

pytestmark = pytest.mark.xdist_group("hostile_text")

NUL = "\x00"
SURROGATE = "\ud800"


def first_success(route: tuple[str, str, str | None]) -> tuple[str, str] | None:
    """A (role, relation) the table says succeeds on this route: the request to break. Relations that name
    something come first, so an optional area parameter (`scope`, `area`) is in the request."""
    relations = sorted(TABLE[route]["rel"], key=lambda relation: relation == NONE)
    for role in ROLES:
        for relation in relations:
            if expected(route, role, relation) == OK:
                return role, relation
    return None


ROUTES = [route for route in TABLE if route[0] != "OPTIONS" and first_success(route)
          and route != ("GET", "/api/v1/events", None)]  # an endless stream; it takes no text but a header

# route → the inputs that answer 500 today; xfail(strict=True), so fixing them shows up. None left: text
# PostgreSQL cannot store is a 422 wherever it reaches SQL (api/problems.py), a NUL in a PWA path a 404
# (app.py); a few api/ fields refuse a NUL earlier, naming the field.
KNOWN_500: dict[tuple[str, str, str | None], str] = {}


def _leaves(value: Any, path: tuple = ()) -> Iterator[tuple]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    elif isinstance(value, str):
        yield path


def _with(value: Any, path: tuple, bad: str) -> Any:
    if not path:
        return value + bad
    copy = list(value) if isinstance(value, list) else dict(value)
    copy[path[0]] = _with(value[path[0]], path[1:], bad)
    return copy


def mutations(route: tuple[str, str, str | None], call: Call) -> Iterator[tuple[str, Call]]:
    """(what was broken, the broken request) for every text value of `call`."""
    kwargs = call.kwargs
    if "json" in kwargs:
        for path in _leaves(kwargs["json"]):
            name = "json." + ".".join(map(str, path))
            yield name + " +NUL", Call(call.method, call.url, {**kwargs, "json": _with(kwargs["json"], path, NUL)})
            # json.dumps escapes the surrogate as \ud800: well-formed JSON, but no UTF-8 for it exists.
            body = json.dumps(_with(kwargs["json"], path, SURROGATE))
            broken = {k: v for k, v in kwargs.items() if k != "json"}
            yield name + " +surrogate", Call(call.method, call.url, {
                **broken, "content": body.encode(), "headers": {"Content-Type": "application/json"}})
    for key in ("params", "data"):
        for field, value in (kwargs.get(key) or {}).items():
            if isinstance(value, str):
                yield f"{key}.{field} +NUL", Call(call.method, call.url, {**kwargs, key: {**kwargs[key],
                                                                                        field: value + NUL}})
    for index, (part, (filename, raw, ctype)) in enumerate(kwargs.get("files") or []):
        if part != "meta":
            continue
        meta = msgspec.json.decode(raw)
        for path in _leaves(meta):
            broken_files = list(kwargs["files"])
            broken_files[index] = (part, (filename, msgspec.json.encode(_with(meta, path, NUL)), ctype))
            name = "meta." + ".".join(map(str, path))
            yield name + " +NUL", Call(call.method, call.url, {**kwargs, "files": broken_files})
    # Path segments the template takes as text ({code:str}, {name:str}, {file_path:path}).
    template = route[1].split("/")
    segments = call.url.split("?")[0].split("/")
    for i, part in enumerate(template):
        if part.startswith("{") and (part.endswith(":str}") or part.endswith(":path}")) and i < len(segments):
            broken = "/".join([*segments[:i], segments[i] + "%00", *segments[i + 1:]])
            yield f"path {part} +NUL", Call(call.method, broken, kwargs)


@pytest_asyncio.fixture(scope="module")
async def world(tmp_path_factory, database_url, redis_url, vapid_pem, street_photos):
    async with build_world(tmp_path_factory.mktemp("hostile") / "data", database_url, redis_url, vapid_pem,
                           street_photos[0]) as w:
        yield w


def _params() -> list[Any]:
    params = []
    for route in ROUTES:
        method, path, variant = route
        marks = [pytest.mark.xfail(strict=True, reason=KNOWN_500[route])] if route in KNOWN_500 else []
        params.append(pytest.param(route, id=f"{method} {path}{f' [{variant}]' if variant else ''}", marks=marks))
    return params


@pytest.mark.parametrize("route", _params())
async def test_text_postgres_cannot_store_is_a_4xx_not_a_500(world, route):
    role, relation = first_success(route)
    caller = None if role == "anonymous" else world.callers[role]
    template = await BUILDERS[route](Ctx(world, role, relation, caller, route))
    failures = []
    for what, _ in list(mutations(route, template)):
        # A fresh valid request per mutation (fresh incident, redemption, …): the previous one may have used it up.
        call = await BUILDERS[route](Ctx(world, role, relation, caller, route))
        broken = dict(mutations(route, call))[what]
        headers = {**broken.kwargs.get("headers", {}), **(caller.headers if caller else {})}
        kwargs = {k: v for k, v in broken.kwargs.items() if k != "headers"}
        reply = await world.client.request(broken.method, broken.url, headers=headers, **kwargs)
        if reply.status_code >= 500:
            failures.append(f"{what} as {role}: {reply.status_code}")
    assert failures == []
