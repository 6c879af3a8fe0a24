"""Open311 GeoReport v2 under /open311/v2 (JSON and XML, the spec's own error list), and the incident
inbox as GeoJSON for GIS tools.

Routes name their format in the path (`services.json`, `requests/12.xml`), so each resource is one
handler behind its two paths; the logic is in gridrider/open311/.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.enums import HttpMethod
from litestar.exceptions import ClientException, HTTPException, ValidationException
from litestar.params import FromPath, FromQuery, QueryParameter

from gridrider.api.auth import PUBLIC, roles, scope_paths
from gridrider.api.incidents import STATES, IncidentItem, decode_inbox_cursor, inbox_cursor
from gridrider.api.problems import CODE_OF_STATUS, request_language
from gridrider.api.ratelimit import RateLimiter
from gridrider.db import categories as db_categories
from gridrider.db import incident_views
from gridrider.db import open311 as db_open311
from gridrider.db import reports as db_reports
from gridrider.db.apikeys import ApiKeyRow
from gridrider.db.members import MemberRow
from gridrider.errors import DomainError, FieldError, NotFound, ValidationFailed, localise_field_error, message_for
from gridrider.logging import get_logger
from gridrider.open311 import intake, keys, queries
from gridrider.open311 import services as open311_services
from gridrider.open311.errors import BadRequest, FormatNotOffered, KeyRejected, ServiceNotFound, TokenNotFound
from gridrider.open311.formats import JSON, MEDIA_TYPES, XML, error_body, format_of, render
from gridrider.services import Services

log = get_logger(__name__)

_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_SERVICE_CODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # what categories.code allows
_AREA_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$")  # what areas.code allows
_RESOURCES = ("discovery", "services", "requests", "servicerequestupdates")
_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def _paths(resource: str) -> list[str]:
    return [f"/{resource}.{JSON}", f"/{resource}.{XML}"]


def _operation_id(name: str):
    """One operation id per path: the JSON and XML paths of a resource are one handler, but OpenAPI wants two."""

    def make(_handler: Any, _method: HttpMethod, components: list[Any]) -> str:
        last = str(components[-1]) if components and isinstance(components[-1], str) else ""
        return f"{name}{'Xml' if last.endswith('.' + XML) else 'Json'}"

    return make


def _one(request: Request[Any, Any, Any], name: str, *, limit: int = 200) -> str | None:
    """A query parameter given at most once; empty is absent (the spec's rule for optional arguments)."""
    values = request.query_params.getall(name, [])
    if len(values) > 1:
        raise BadRequest(name, "duplicate", f"{name} 只能出现一次。")
    if not values or not values[0].strip():
        return None
    if len(values[0]) > limit:
        raise BadRequest(name, "too_long", f"{name} 太长。")
    return values[0]


def _many(request: Request[Any, Any, Any], name: str) -> list[str]:
    """A comma list that may also repeat; bounded so a huge query string is a 400, not work."""
    values = request.query_params.getall(name, [])
    if sum(len(v) for v in values) > 20_000:
        raise BadRequest(name, "too_long", f"{name} 太长。")
    return values


def _split(name: str) -> tuple[str, str]:
    """'12.json' → ('12', 'json'); an unknown or missing extension is a resource that does not exist."""
    stem, dot, extension = name.rpartition(".")
    if not dot or extension not in MEDIA_TYPES:
        raise FormatNotOffered()
    return stem, extension


def _reply(request: Request[Any, Any, Any], root: str, body: Any, *, status: int = 200) -> Response[bytes]:
    fmt = format_of(request.url.path) or XML
    return Response(render(fmt, root, body), status_code=status, media_type=MEDIA_TYPES[fmt],
                    headers={"Content-Language": request_language(request)})


async def _key(request: Request[Any, Any, Any], services: Services) -> ApiKeyRow | None:
    # However long, a wrong key is a wrong key (403), not a bad parameter.
    raw = _one(request, "api_key", limit=100_000)
    return await keys.authenticate(services.pool, services.settings.session_secret, raw)


# ── errors: the spec's list of {code, description}, in the format the path asked for ────────────────

def open311_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    lang = request_language(request)
    headers: dict[str, str] = {}
    if isinstance(exc, DomainError):
        # The spec: 404 for what does not exist, 403 for the key, "basically 400" for everything else.
        status = 400 if exc.status == 422 else exc.status
        descriptions = [f"{e.field}: {localise_field_error(e, lang).message}" for e in exc.errors] \
            or [message_for(exc.code, lang)]
        headers = exc.headers
    elif isinstance(exc, ValidationException):
        status, descriptions = 400, [message_for("open311_invalid", lang)]
    elif isinstance(exc, HTTPException):
        status = exc.status_code
        descriptions = [message_for(CODE_OF_STATUS.get(status, "malformed_body"), lang)]
        headers = dict(exc.headers or {})
    else:
        log.exception("open311.unhandled", path=request.url.path, method=request.method, error=type(exc).__name__)
        status, descriptions = 500, [message_for("internal", lang)]
    fmt = format_of(request.url.path) or XML  # XML is the format every client must read
    return Response(render(fmt, "errors", error_body(status, descriptions)), status_code=status,
                    media_type=MEDIA_TYPES[fmt], headers={"Content-Language": lang, **headers})


OPEN311_EXCEPTION_HANDLERS = {
    DomainError: open311_error,
    ValidationException: open311_error,
    HTTPException: open311_error,
    Exception: open311_error,
}


class Open311Controller(Controller):
    path = "/open311/v2"
    exception_handlers = OPEN311_EXCEPTION_HANDLERS  # type: ignore[assignment]

    @get(_paths("discovery"), operation_id=_operation_id("open311Discovery"), opt=PUBLIC)
    async def discovery(self, request: Request[Any, Any, Any], services: NamedDependency[Services]
                        ) -> Response[bytes]:
        categories = await db_categories.list_categories(services.pool, include_disabled=True)
        changeset = max((c["updated_at"] for c in categories), default=_EPOCH)
        body = open311_services.discovery(public_url=services.settings.public_url,
                                          contact=services.settings.open311_contact, changeset=changeset,
                                          lang=request_language(request))
        return _reply(request, "discovery", body)

    @get(_paths("services"), operation_id=_operation_id("open311Services"), opt=PUBLIC)
    async def service_list(self, request: Request[Any, Any, Any], services: NamedDependency[Services]
                           ) -> Response[bytes]:
        lang = request_language(request)
        categories = await db_categories.list_categories(services.pool)
        return _reply(request, "services", [open311_services.service(c, lang) for c in categories])

    @get("/services/{name:str}", operation_id="open311ServiceDefinition", opt=PUBLIC)
    async def service_definition(self, request: Request[Any, Any, Any], services: NamedDependency[Services],
                                 name: FromPath[str]) -> Response[bytes]:
        code, _ = _split(name)
        category = await db_reports.category_info(services.pool, code) if _SERVICE_CODE_RE.match(code) else None
        if category is None or not category.enabled:
            raise ServiceNotFound()
        return _reply(request, "service_definition",
                      open311_services.definition(category.code, request_language(request)))

    @get(_paths("requests"), operation_id=_operation_id("open311Requests"), opt=PUBLIC)
    async def request_list(self, request: Request[Any, Any, Any], services: NamedDependency[Services]
                           ) -> Response[bytes]:
        key = await _key(request, services)
        ids = queries.parse_ids(_many(request, "service_request_id"))
        codes = states = None
        window = None
        if ids is None:  # the spec: service_request_id overrides every other argument
            codes = queries.parse_codes(_many(request, "service_code"))
            if codes:
                known = {c["code"] for c in await db_categories.list_categories(services.pool, include_disabled=True)}
                if any(code not in known for code in codes):
                    raise ServiceNotFound()
            states = queries.parse_statuses(_many(request, "status"))
            window = queries.date_range(_one(request, "start_date"), _one(request, "end_date"), services.clock.now())
        rows = await db_open311.service_requests(
            services.pool, ids=ids, codes=codes, states=states, start=window.start if window else None,
            end=window.end if window else None, area_path=key.area_path if key else None, keyed=key is not None,
            limit=queries.MAX_RESULTS)
        return _reply(request, "service_requests", self._requests(request, services, rows, key))

    @get("/requests/{name:str}", operation_id="open311Request", opt=PUBLIC)
    async def request_one(self, request: Request[Any, Any, Any], services: NamedDependency[Services],
                          name: FromPath[str]) -> Response[bytes]:
        stem, _ = _split(name)
        key = await _key(request, services)
        if not (stem.isascii() and stem.isdigit() and len(stem) <= 19 and 1 <= int(stem) < 2**63):
            raise NotFound()
        # With a key, an incident outside its area is as absent as an unknown one.
        rows = await db_open311.service_requests(
            services.pool, ids=[int(stem)], codes=None, states=None, start=None, end=None,
            area_path=key.area_path if key else None, keyed=key is not None, limit=1)
        if not rows:
            raise NotFound()
        return _reply(request, "service_requests", self._requests(request, services, rows, key))

    @staticmethod
    def _requests(request: Request[Any, Any, Any], services: Services, rows: list[db_open311.ServiceRequestRow],
                  key: ApiKeyRow | None) -> list[dict[str, Any]]:
        lang, now = request_language(request), services.clock.now()
        return [open311_services.service_request(
            row, lang=lang, keyed=key is not None, public_url=services.settings.public_url,
            secret=services.settings.url_signing_secret, now=now) for row in rows]

    @post(_paths("requests"), operation_id=_operation_id("open311CreateRequest"), opt=PUBLIC)
    async def create_request(self, request: Request[Any, Any, Any], services: NamedDependency[Services],
                             limiter: NamedDependency[RateLimiter]) -> Response[bytes]:
        content_type = request.headers.get("content-type", "").lower()
        if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            raise BadRequest("body", "invalid", "请以 application/x-www-form-urlencoded 表单提交。")
        try:
            form = await request.form()
        except ClientException as exc:
            if exc.status_code == 413:
                raise
            raise BadRequest("body", "invalid", "表单无法读取。") from None
        except (UnicodeDecodeError, LookupError):
            raise BadRequest("body", "invalid_character", "表单不是有效的 UTF-8。") from None
        items = list(form.multi_items())
        # The key first (403), whatever else is wrong with the form (400): the spec's order of refusals.
        raw_key = next((v for k, v in items if k == "api_key" and isinstance(v, str)), None) \
            or _one(request, "api_key", limit=100_000)
        key = await keys.authenticate(services.pool, services.settings.session_secret, raw_key)
        if key is None:
            raise KeyRejected()
        fields = intake.read_form(items)
        lang = request_language(request)
        async with services.pool.acquire() as conn:
            filed = await intake.submit(conn, services, limiter, key, fields)
        notice = ("已收到。请求分派、合并后生成工单编号，可凭 token 查询。" if lang != "en" else
                  "Received. The service_request_id exists once the request is routed; look it up with the token.")
        return _reply(request, "service_requests", [{"token": filed.token, "service_notice": notice,
                                                     "account_id": None}],
                      status=201 if filed.created else 200)

    @get("/tokens/{name:str}", operation_id="open311Token", opt=PUBLIC)
    async def token(self, request: Request[Any, Any, Any], services: NamedDependency[Services],
                    name: FromPath[str]) -> Response[bytes]:
        stem, _ = _split(name)
        found = await db_open311.token(services.pool, stem) if _TOKEN_RE.match(stem) else None
        if found is None:
            raise TokenNotFound()
        # Until process_report has run the token is known but has no id yet: an empty one, not a 404.
        return _reply(request, "service_requests", [{"service_request_id": found.incident_id, "token": found.token}])

    @get(_paths("servicerequestupdates"), operation_id=_operation_id("open311Updates"), opt=PUBLIC)
    async def updates(self, request: Request[Any, Any, Any], services: NamedDependency[Services]
                      ) -> Response[bytes]:
        key = await _key(request, services)
        now = services.clock.now()
        window = queries.date_range(_one(request, "start_date"), _one(request, "end_date"), now)
        rows = await db_open311.updates(services.pool, kinds=list(open311_services.UPDATE_KINDS), start=window.start,
                                        end=window.end, area_path=key.area_path if key else None,
                                        keyed=key is not None, limit=queries.MAX_RESULTS)
        lang = request_language(request)
        body = [open311_services.update(row, lang=lang, keyed=key is not None,
                                        public_url=services.settings.public_url,
                                        secret=services.settings.url_signing_secret, now=now) for row in rows]
        return _reply(request, "service_request_updates", body)

    # Anything else at this level (`services.html`, `requests.csv`) still answers in the spec's format.
    @get("/{name:str}", operation_id="open311Unknown", opt=PUBLIC, include_in_schema=False)
    async def unknown(self, name: FromPath[str]) -> Response[bytes]:
        raise FormatNotOffered() if (name.rpartition(".")[0] or name) in _RESOURCES else NotFound()

    @post("/{name:str}", operation_id="open311UnknownPost", opt=PUBLIC, include_in_schema=False)
    async def unknown_post(self, name: FromPath[str]) -> Response[bytes]:
        raise FormatNotOffered() if (name.rpartition(".")[0] or name) in _RESOURCES else NotFound()


# ── GeoJSON for GIS tools ───────────────────────────────────────────────────────────────────────────

GEOJSON_MAX = 1000


class PointGeometry(msgspec.Struct, frozen=True, kw_only=True):
    type: str = "Point"
    coordinates: tuple[float, float]  # [longitude, latitude], WGS-84 (RFC 7946's only CRS)


class IncidentFeature(msgspec.Struct, frozen=True, kw_only=True):
    type: str = "Feature"
    id: int
    geometry: PointGeometry
    properties: IncidentItem


class IncidentFeatureCollection(msgspec.Struct, frozen=True, kw_only=True):
    type: str = "FeatureCollection"
    features: list[IncidentFeature]
    # A foreign member (RFC 7946 §6.1): GIS tools ignore it, scripts page with it as in the inbox.
    next_cursor: str | None


class IncidentGeoJsonController(Controller):
    path = "/api/v1/incidents.geojson"

    @get("/", operation_id="listIncidentsGeoJson", opt=roles("grid_member", "supervisor", "admin"),
         media_type="application/geo+json")
    async def features(
        self, me: NamedDependency[MemberRow], services: NamedDependency[Services],
        # The inbox's own filters and scope (GET /api/v1/incidents), with pages up to 1,000 points.
        states: Annotated[list[str] | None, QueryParameter(name="state", max_items=7)] = None,
        category: Annotated[str | None, QueryParameter(max_length=64)] = None,
        overdue: FromQuery[bool | None] = None, life_safety: FromQuery[bool | None] = None,
        area: Annotated[str | None, QueryParameter(max_length=64)] = None,
        cursor: Annotated[str | None, QueryParameter(max_length=200)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=GEOJSON_MAX)] = 500,
    ) -> IncidentFeatureCollection:
        if states and any(s not in STATES for s in states):
            raise ValidationFailed(errors=[FieldError("state", "invalid", "状态筛选无效。")])
        # Checked against what codes can be, so a NUL or other junk never reaches PostgreSQL (a 500 there).
        if category is not None and not _SERVICE_CODE_RE.match(category):
            raise ValidationFailed(errors=[FieldError("category", "invalid", "类别无效。")])
        if area is not None and not _AREA_CODE_RE.match(area):
            raise ValidationFailed(errors=[FieldError("area", "invalid", "区域编码无效。")])
        now = services.clock.now()
        if area is not None:
            await scope_paths(services.pool, me, area)  # outside the caller's areas or unknown: 404 area_not_found
        rows = await incident_views.incident_page(
            services.pool, capacity="grid" if me.role == "grid_member" else "supervisor", member_id=me.id,
            is_admin=me.role == "admin", limit=limit + 1, states=states, category=category, overdue=overdue,
            life_safety=life_safety, area_code=area, after=decode_inbox_cursor(cursor))
        features = [IncidentFeature(
            id=r["id"], geometry=PointGeometry(coordinates=(r["lon"], r["lat"])),
            properties=IncidentItem.of(r, now))
            for r in rows[:limit]]
        return IncidentFeatureCollection(
            features=features, next_cursor=inbox_cursor(rows[limit - 1]) if len(rows) > limit else None)
