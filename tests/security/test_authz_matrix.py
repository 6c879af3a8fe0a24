"""The authorisation matrix (issue 12): every route × every role × own / same area / other area / unknown object.

The expected answers below were written from DESIGN.md §1, §2b, §6 and §8, README.md "The API so far" and the
module docstrings of backend/gridrider/api/*.py — before reading any handler. Where the code answers otherwise
and DESIGN says the code is wrong, the case is an xfail(strict=True) in KNOWN_BUGS (it flips when fixed); the
table is not bent to match the code. Three entries changed after the first run, each because one of those
sources (which I had misread) or DESIGN's silence settled it for the code; their comments say so.

A route of the real app without an entry fails `test_every_route_of_the_app_has_an_entry`, so a new route
cannot ship without someone deciding who may call it.

Answer classes: "2xx", "401" (nobody signed in), "403" (this role may never do this, whatever the object —
decided before any object is looked up, so it reveals nothing about objects), "404" (an object outside the
caller's scope, or none at all: the two must be indistinguishable, DESIGN §8), "skip: why".
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient

from gridrider.images.urls import signed_photo_path
from tests.api.test_areas import collection, new_town
from tests.api.test_reports import files, meta
from tests.conftest import Caller, issue_code
from tests.factories import make_report
from tests.security.world import (
    A_COMMUNITY,
    A_GRID,
    A_GRID2,
    B_COMMUNITY,
    B_GRID,
    B_GRID2,
    World,
    browser_subscription,
    build_world,
    point_in,
)

# One worker runs the whole module under `make test` (-n 2 --dist loadgroup): one world, and the 404 comparison
# at the end sees every case.
pytestmark = pytest.mark.xdist_group("authz_matrix")

ROLES = ("anonymous", "courier", "grid_member", "supervisor", "admin")

# Relations of the object (or area) a request names, seen from the caller.
NONE = "none"  # the route names no object
OWN = "own"  # the caller's own object (their report, subscription, session, member row, first-reported incident),
#              or for an area parameter the caller's own area
SAME = "same_area"  # someone else's object inside the caller's area (for a grid member: their grid)
OTHER = "other_area"  # an object of the sibling community ZW-ZWZ-C03
UNKNOWN = "unknown"  # no such object (or area code, or Open311 key)
ANY = "any"  # an existing object of a global catalogue (categories, rewards, files) that belongs to no area

OK, R401, R403, R404 = "2xx", "401", "403", "404"
# A grid member's or supervisor's answer on an incident (or redemption, flag, area) they may act on:
# theirs → done; another community's or none → the same 404 (DESIGN §8).
SCOPED = {SAME: OK, OTHER: R404, UNKNOWN: R404}
# An admin sees every area (README: "admin … everything"); only what does not exist is 404.
ADMIN_SCOPED = {SAME: OK, OTHER: OK, UNKNOWN: R404}
# A parameter naming an area (`scope`, `area`): none given, the caller's own, the sibling community, unknown.
# README "Supervisors and admins": "Every read takes scope=<area code> inside the caller's subtree (else 404
# area_not_found)".
AREA_PARAM = (NONE, OWN, OTHER, UNKNOWN)
SCOPED_AREA = {NONE: OK, OWN: OK, OTHER: R404, UNKNOWN: R404}
ADMIN_AREA = {NONE: OK, OWN: OK, OTHER: OK, UNKNOWN: R404}
INCIDENT = (SAME, OTHER, UNKNOWN)
ACTION = "/api/v1/incidents/{incident_id:int}/{action:str}"

# (method, path template as Litestar names it, variant) → "rel": the relations tried, then the answer per role:
# a role's own key, else "signed_in" (any of the four roles), else "*"; a str applies to every relation.
# "fresh": each case signs in a throwaway member of the role, because the case acts on the caller itself.
TABLE: dict[tuple[str, str, str | None], dict[str, Any]] = {
    # ── health: README "Health" — load-balancer probes, nobody signs in ─────────────────────────────────────
    ("GET", "/healthz", None): {"rel": (NONE,), "*": OK},
    ("GET", "/readyz", None): {"rel": (NONE,), "*": OK},
    # ── enrolment and sessions: README table, DESIGN §6 ──────────────────────────────────────────────────────
    # "POST /sessions · DELETE /sessions/current | anyone · signed in"
    ("POST", "/api/v1/sessions", None): {"rel": (NONE,), "*": OK},
    ("DELETE", "/api/v1/sessions/current", None): {"rel": (OWN,), "*": R401, "signed_in": OK, "fresh": True},
    # "GET /me · GET /privacy-notice | signed in · anyone"
    ("GET", "/api/v1/me", None): {"rel": (NONE,), "*": R401, "signed_in": OK},
    ("GET", "/api/v1/privacy-notice", None): {"rel": (NONE,), "*": OK},
    # "POST /enrolments | admin, supervisor | a one-time code for a member of the caller's subtree": the
    # relation is the area the new member gets (own area, the sibling community, an unknown code — unknown and
    # foreign areas are one 404, api/auth.scope_paths).
    ("POST", "/api/v1/enrolments", "new member"): {
        "rel": (OWN, OTHER, UNKNOWN), "*": R401, "courier": R403, "grid_member": R403,
        "supervisor": {OWN: OK, OTHER: R404, UNKNOWN: R404}, "admin": {OWN: OK, OTHER: OK, UNKNOWN: R404}},
    # DESIGN §6: a lost phone gets a new code for the same member, "but only from someone who could enrol that
    # member: a phone that belongs to a member outside the caller's subtree … is treated as a foreign object
    # (404), so no supervisor can take over another county's … account".
    ("POST", "/api/v1/enrolments", "existing phone"): {
        "rel": (SAME, OTHER), "*": R401, "courier": R403, "grid_member": R403,
        "supervisor": {SAME: OK, OTHER: R404}, "admin": OK},
    # ── members: README "GET/POST/PUT /members/{id}… | admin, supervisor | own subtree only (else 404)";
    # api/members.py: acting on "the caller themselves" is 404 too ─────────────────────────────────────────────
    ("GET", "/api/v1/members", None): {  # the relation is the `area` filter
        "rel": AREA_PARAM, "*": R401, "courier": R403, "grid_member": R403,
        "supervisor": SCOPED_AREA, "admin": ADMIN_AREA},
    # api/members.py: "the endpoints below answer 404 otherwise: a member with an area outside the subtree, the
    # caller themselves, another supervisor" — the caller's own row is GET /me. (I first wrote 2xx for "own"
    # here; the docstring, one of this table's sources, says 404.)
    ("GET", "/api/v1/members/{member_id:int}", None): {
        "rel": (OWN, SAME, OTHER, UNKNOWN), "*": R401, "courier": R403, "grid_member": R403,
        "supervisor": {OWN: R404, **SCOPED}, "admin": {OWN: R404, **ADMIN_SCOPED}},
    **{("POST" if action != "areas" else "PUT", f"/api/v1/members/{{member_id:int}}/{action}", None): {
        "rel": (OWN, SAME, OTHER, UNKNOWN), "*": R401, "courier": R403, "grid_member": R403, "fresh": True,
        "supervisor": {OWN: R404, **SCOPED}, "admin": {OWN: R404, **ADMIN_SCOPED}}
       for action in ("revoke-sessions", "deactivate", "areas")},
    # ── categories: README "GET /categories | signed in"; api/categories.py "an admin may … edit one (PATCH) or
    # add one (POST)"; DESIGN §1 admin: "areas, categories, keys, channels" ──────────────────────────────────
    ("GET", "/api/v1/categories", None): {"rel": (NONE,), "*": R401, "signed_in": OK},
    ("POST", "/api/v1/categories", None): {"rel": (NONE,), "*": R401, "signed_in": R403, "admin": OK},
    ("PATCH", "/api/v1/categories/{code:str}", None): {
        "rel": (ANY, UNKNOWN), "*": R401, "signed_in": R403, "admin": {ANY: OK, UNKNOWN: R404}},
    # ── reports: README "POST /reports | courier"; "GET /reports/{id} · GET /me/reports | courier | own reports
    # only"; DESIGN §8 "a courier sees only their own reports" ─────────────────────────────────────────────────
    ("POST", "/api/v1/reports", None): {"rel": (NONE,), "*": R401, "signed_in": R403, "courier": OK},
    ("GET", "/api/v1/reports/{report_id:int}", None): {
        "rel": (OWN, SAME, OTHER, UNKNOWN), "*": R401, "signed_in": R403,
        "courier": {OWN: OK, SAME: R404, OTHER: R404, UNKNOWN: R404}},
    ("GET", "/api/v1/me/reports", None): {"rel": (NONE,), "*": R401, "signed_in": R403, "courier": OK},
    # README "GET /photos/{id}/{thumb|display}?exp&sig | signed link"; DESIGN §4: signed, expiring URLs so <img>
    # works without a Bearer header — the signature is the credential, whoever holds it.
    ("GET", "/api/v1/photos/{photo_id:int}/{variant:str}", None): {
        "rel": (ANY, UNKNOWN), "*": {ANY: OK, UNKNOWN: R404}},
    # ── Web Push: api/push.py "subscriptions of the signed-in member, and the VAPID key browsers subscribe with";
    # someone else's subscription is a foreign object (§8) ────────────────────────────────────────────────────
    ("GET", "/api/v1/push/key", None): {"rel": (NONE,), "*": R401, "signed_in": OK},
    ("GET", "/api/v1/push/subscriptions", None): {"rel": (NONE,), "*": R401, "signed_in": OK},
    ("POST", "/api/v1/push/subscriptions", None): {"rel": (NONE,), "*": R401, "signed_in": OK},
    ("DELETE", "/api/v1/push/subscriptions", None): {  # by endpoint
        "rel": (OWN, SAME, UNKNOWN), "*": R401, "signed_in": {OWN: OK, SAME: R404, UNKNOWN: R404}},
    ("DELETE", "/api/v1/push/subscriptions/{subscription_id:int}", None): {
        "rel": (OWN, SAME, OTHER, UNKNOWN), "*": R401,
        "signed_in": {OWN: OK, SAME: R404, OTHER: R404, UNKNOWN: R404}},
    # ── incidents: README "Grid work" — the inbox is a grid team's (a supervisor's: their subtree); DESIGN §8 "a
    # courier sees only their own reports and the summary of open incidents near them", so no inbox or full
    # incident for couriers; admins see every area (api/auth: "None (everything) for admins") ─────────────────
    ("GET", "/api/v1/incidents", None): {  # the relation is the `area` filter
        "rel": AREA_PARAM, "*": R401, "courier": R403, "grid_member": SCOPED_AREA, "supervisor": SCOPED_AREA,
        "admin": ADMIN_AREA},
    # issue 10: "GET /api/v1/incidents.geojson (scoped like /api/v1/incidents)"
    ("GET", "/api/v1/incidents.geojson", None): {
        "rel": AREA_PARAM, "*": R401, "courier": R403, "grid_member": SCOPED_AREA, "supervisor": SCOPED_AREA,
        "admin": ADMIN_AREA},
    # README: "Riders see GET /api/v1/incidents/nearby"
    ("GET", "/api/v1/incidents/nearby", None): {"rel": (NONE,), "*": R401, "signed_in": R403, "courier": OK},
    # UX.md "My reports: tapping shows the incident's progress and the after-photo when resolved": a rider sees the
    # incident of their own report; every other incident is a foreign object to them (§8). (I first wrote 403
    # for couriers; the code admits them and answers 404 for others' incidents, which §8 asks for.)
    ("GET", "/api/v1/incidents/{incident_id:int}", None): {
        "rel": (OWN, *INCIDENT), "*": R401, "courier": {OWN: OK, SAME: R404, OTHER: R404, UNKNOWN: R404},
        "grid_member": {OWN: OK, **SCOPED}, "supervisor": {OWN: OK, **SCOPED}, "admin": {OWN: OK, **ADMIN_SCOPED}},
    # DESIGN §2b, one row per action. A role the "who" column never names gets 403 whatever the incident. Each
    # action is tried on an incident in the state it starts from.
    # Admins: §2b names none. I first wrote 403 (§1 gives admins areas, categories, keys, channels); the code
    # gives them a supervisor's capacity over every area. I judge the code right: an admin may enrol a county
    # supervisor at will, so refusing admins protects nothing, and README grants admins every supervisor power
    # elsewhere ("supervisor, admin"). DESIGN should say so (see the report).
    ("POST", ACTION, "dispatch"): {
        "rel": INCIDENT, "*": R401, "signed_in": R403, "supervisor": SCOPED, "admin": ADMIN_SCOPED},
    ("POST", ACTION, "accept"): {"rel": INCIDENT, "*": R401, "signed_in": R403, "grid_member": SCOPED},
    ("POST", ACTION, "transfer"): {
        "rel": INCIDENT, "*": R401, "signed_in": R403, "grid_member": SCOPED, "supervisor": SCOPED,
        "admin": ADMIN_SCOPED},
    ("POST", ACTION, "request_complex"): {"rel": INCIDENT, "*": R401, "signed_in": R403, "grid_member": SCOPED},
    ("POST", ACTION, "approve_complex"): {
        "rel": INCIDENT, "*": R401, "signed_in": R403, "supervisor": SCOPED, "admin": ADMIN_SCOPED},
    ("POST", ACTION, "decline_complex"): {
        "rel": INCIDENT, "*": R401, "signed_in": R403, "supervisor": SCOPED, "admin": ADMIN_SCOPED},
    ("POST", ACTION, "reject"): {
        "rel": INCIDENT, "*": R401, "signed_in": R403, "grid_member": SCOPED, "supervisor": SCOPED,
        "admin": ADMIN_SCOPED},
    ("POST", ACTION, "merge"): {
        "rel": INCIDENT, "*": R401, "signed_in": R403, "grid_member": SCOPED, "supervisor": SCOPED,
        "admin": ADMIN_SCOPED},
    ("POST", ACTION, "reopen"): {
        "rel": INCIDENT, "*": R401, "signed_in": R403, "supervisor": SCOPED, "admin": ADMIN_SCOPED},
    # "appeal | the rejected incident's first reporter": another rider's incident is a foreign object.
    ("POST", ACTION, "appeal"): {
        "rel": (OWN, SAME, OTHER, UNKNOWN), "*": R401, "signed_in": R403,
        "courier": {OWN: OK, SAME: R404, OTHER: R404, UNKNOWN: R404}},
    ("POST", ACTION, "uphold_appeal"): {
        "rel": INCIDENT, "*": R401, "signed_in": R403, "supervisor": SCOPED, "admin": ADMIN_SCOPED},
    ("POST", ACTION, "dismiss_appeal"): {
        "rel": INCIDENT, "*": R401, "signed_in": R403, "supervisor": SCOPED, "admin": ADMIN_SCOPED},
    ("POST", "/api/v1/incidents/{incident_id:int}/resolve", None): {
        "rel": INCIDENT, "*": R401, "signed_in": R403, "grid_member": SCOPED},
    # The grids a transfer may go to: asked by whoever may transfer (the transfer row above), of an incident
    # they see; another area's incident is a foreign object.
    ("GET", "/api/v1/incidents/{incident_id:int}/transfer-targets", None): {
        "rel": INCIDENT, "*": R401, "signed_in": R403, "grid_member": SCOPED, "supervisor": SCOPED,
        "admin": ADMIN_SCOPED},
    # §2b "Verification by riders … accepted only within 300 m": the distance is a rider's scope, not the area,
    # so a hazard in the next community that the rider passes is theirs to confirm.
    ("POST", "/api/v1/incidents/{incident_id:int}/verifications", None): {
        "rel": INCIDENT, "*": R401, "signed_in": R403, "courier": {SAME: OK, OTHER: OK, UNKNOWN: R404}},
    # ── points: api/points.py "A rider's points"; README "Riders' points follow outcomes" ──────────────────────
    ("GET", "/api/v1/me/points", None): {"rel": (NONE,), "*": R401, "signed_in": R403, "courier": OK},
    ("GET", "/api/v1/me/points/ledger", None): {"rel": (NONE,), "*": R401, "signed_in": R403, "courier": OK},
    # ── admin tools: api/calendar.py "for admins"; api/channels.py "for admins" ──────────────────────────────────
    ("GET", "/api/v1/calendar/status", None): {"rel": (NONE,), "*": R401, "signed_in": R403, "admin": OK},
    ("GET", "/api/v1/admin/channels", None): {"rel": (NONE,), "*": R401, "signed_in": R403, "admin": OK},
    # api/events.py: "the caller's notifications … Authenticated by the usual Bearer header" — every member.
    ("GET", "/api/v1/events", None): {"rel": (NONE,), "*": R401, "signed_in": OK},
    # api/webhooks.py "by admins and the area's supervisors": own area, a grid inside it, the sibling, unknown.
    **{(method, "/api/v1/areas/{code:str}/wecom", None): {
        "rel": (OWN, SAME, OTHER, UNKNOWN), "*": R401, "courier": R403, "grid_member": R403,
        "supervisor": {OWN: OK, **SCOPED}, "admin": {OWN: OK, **ADMIN_SCOPED}}
       for method in ("GET", "PUT", "DELETE")},
    # ── rewards and redemptions: api/rewards.py ───────────────────────────────────────────────────────────────
    ("GET", "/api/v1/rewards", None): {"rel": (NONE,), "*": R401, "signed_in": OK},  # "everyone signed in"
    ("POST", "/api/v1/rewards", None): {  # "(supervisor, admin): the catalogue is global"
        "rel": (NONE,), "*": R401, "signed_in": R403, "supervisor": OK, "admin": OK},
    ("PATCH", "/api/v1/rewards/{reward_id:int}", None): {
        "rel": (ANY, UNKNOWN), "*": R401, "signed_in": R403, "supervisor": {ANY: OK, UNKNOWN: R404},
        "admin": {ANY: OK, UNKNOWN: R404}},
    ("POST", "/api/v1/redemptions", None): {"rel": (NONE,), "*": R401, "signed_in": R403, "courier": OK},
    ("GET", "/api/v1/me/redemptions", None): {"rel": (NONE,), "*": R401, "signed_in": R403, "courier": OK},
    ("GET", "/api/v1/redemptions", None): {
        "rel": (NONE,), "*": R401, "signed_in": R403, "supervisor": OK, "admin": OK},
    # "approve, decline: the same scope (outside it: 404)" — the scope is the rider's area.
    **{("POST", f"/api/v1/redemptions/{{redemption_id:int}}/{verb}", None): {
        "rel": INCIDENT, "*": R401, "signed_in": R403, "supervisor": SCOPED, "admin": ADMIN_SCOPED}
       for verb in ("approve", "decline")},
    # ── review: api/review.py "(supervisor, admin) … riders in their subtree … Outside the caller's subtree: 404"
    ("GET", "/api/v1/review", None): {"rel": (NONE,), "*": R401, "signed_in": R403, "supervisor": OK, "admin": OK},
    **{("POST", f"/api/v1/review/flags/{{flag_id:int}}/{verb}", None): {
        "rel": INCIDENT, "*": R401, "signed_in": R403, "supervisor": SCOPED, "admin": ADMIN_SCOPED}
       for verb in ("clear", "confirm")},
    # ── rankings, dashboard, exports: README "Supervisors and admins"; api/rankings.py: riders see the rider
    # ranking (pseudonyms only, plus their own row) ───────────────────────────────────────────────────────────
    ("GET", "/api/v1/rankings/riders", None): {
        "rel": AREA_PARAM, "*": R401, "courier": SCOPED_AREA, "supervisor": SCOPED_AREA, "admin": ADMIN_AREA,
        "grid_member": "skip: DESIGN, README and api/rankings.py name riders, supervisors and admins only; "
                       "whether grid members see the rider ranking is undecided"},
    **{("GET", path, None): {
        "rel": AREA_PARAM, "*": R401, "signed_in": R403, "supervisor": SCOPED_AREA, "admin": ADMIN_AREA}
       for path in ("/api/v1/rankings/teams", "/api/v1/dashboard", "/api/v1/exports/incidents.csv",
                    "/api/v1/exports/rankings.csv")},
    # ── areas: api/areas.py "a supervisor lists their subtree; an admin imports the city's GeoJSON" ──────────────
    ("GET", "/api/v1/areas", None): {
        "rel": (NONE,), "*": R401, "courier": R403, "grid_member": R403, "supervisor": OK, "admin": OK},
    ("POST", "/api/v1/areas/import", None): {"rel": (NONE,), "*": R401, "signed_in": R403, "admin": OK},
    # Added while this suite was written (commit 46009f3 "GET /api/v1/areas/shapes (the subtree's polygons as
    # GeoJSON for the supervisors' SVG map)"; UX.md "The supervisor's area and hotspot map is drawn as SVG"):
    # a supervisor's read of their subtree, `scope` as every read takes it.
    ("GET", "/api/v1/areas/shapes", None): {
        "rel": AREA_PARAM, "*": R401, "courier": R403, "grid_member": R403, "supervisor": SCOPED_AREA,
        "admin": ADMIN_AREA},
    # ── Open311 (issue 10; open311/errors.py): public, with its own credential, the api_key — a Bearer token
    # changes nothing, so every role answers as anonymous does. "403 for a missing or wrong api_key", 404 for
    # what does not exist; GETs need no key (a stranger gets the rounded, note-free view) ──────────────────────
    **{("GET", f"/open311/v2/{name}.{fmt}", None): {"rel": (NONE,), "*": OK}
       for name in ("discovery", "services", "requests", "servicerequestupdates") for fmt in ("json", "xml")},
    **{("POST", f"/open311/v2/requests.{fmt}", None): {
        "rel": (NONE, OWN, OTHER, UNKNOWN),  # no key; the key of community A; A's key for a point in B; bad key
        "*": {NONE: R403, OWN: OK, UNKNOWN: R403,
              OTHER: "skip: a key's out-of-area request is refused in the GeoReport error format with a 4xx "
                     "the spec leaves open; tests/open311 check its code"}}
       for fmt in ("json", "xml")},
    ("GET", "/open311/v2/services/{name:str}", None): {"rel": (ANY, UNKNOWN), "*": {ANY: OK, UNKNOWN: R404}},
    ("GET", "/open311/v2/requests/{name:str}", None): {"rel": INCIDENT, "*": {SAME: OK, OTHER: OK, UNKNOWN: R404}},
    ("GET", "/open311/v2/tokens/{name:str}", None): {"rel": (OWN, UNKNOWN), "*": {OWN: OK, UNKNOWN: R404}},
    ("GET", "/open311/v2/{name:str}", None): {"rel": (UNKNOWN,), "*": R404},
    ("POST", "/open311/v2/{name:str}", None): {"rel": (UNKNOWN,), "*": R404},
    # ── the OpenAPI document and its viewers: DESIGN §6 "OpenAPI 3.1 at /schema (not exposed publicly in
    # production)" — off there by GRIDRIDER_PUBLISH_SCHEMA; on by default, and then for anyone ─────────────────
    **{("GET", f"/schema{tail}", None): {"rel": (NONE,), "*": OK}
       for tail in ("", "/swagger", "/redoc", "/rapidoc", "/elements", "/openapi.json", "/openapi.yaml",
                    "/openapi.yml", "/oauth2-redirect.html")},
    ("GET", "/schema/{path:str}", None): {"rel": (UNKNOWN,), "*": R404},
    # ── the PWA's static files: served to anyone (the app signs in after loading) ────────────────────────────
    ("GET", "/", None): {"rel": (NONE,), "*": OK},
    ("GET", "/{file_path:path}", None): {"rel": (ANY, UNKNOWN), "*": {ANY: OK, UNKNOWN: R404}},
    ("HEAD", "/{file_path:path}", None): {"rel": (ANY, UNKNOWN), "*": {ANY: OK, UNKNOWN: R404}},
    # Litestar answers OPTIONS on every path by itself (an Allow header, no body, no data of ours).
    ("OPTIONS", "*", None): {"rel": (NONE,), "*": "skip: Litestar's generated OPTIONS answer carries no data"},
}

# Cases where the code answers otherwise and DESIGN says the code is wrong: (method, path, variant, role,
# relation) → what is wrong. Each is an xfail(strict=True), so fixing the code makes the test say so.
KNOWN_BUGS: dict[tuple[str, str, str | None, str, str], str] = {}


def expected(route: tuple[str, str, str | None], role: str, relation: str) -> str:
    entry = TABLE[route]
    answer = entry.get(role, entry.get("signed_in", entry["*"]) if role != "anonymous" else entry["*"])
    return answer[relation] if isinstance(answer, dict) else answer


@dataclasses.dataclass(frozen=True)
class Case:
    route: tuple[str, str, str | None]
    role: str
    relation: str

    @property
    def id(self) -> str:
        method, path, variant = self.route
        return f"{method} {path}{f' [{variant}]' if variant else ''} as {self.role} on {self.relation}"


def all_cases() -> list[Any]:
    cases = []
    for route, entry in TABLE.items():
        for role in ROLES:
            for relation in entry["rel"]:
                case = Case(route, role, relation)
                answer = expected(route, role, relation)
                marks = []
                if answer.startswith("skip"):
                    marks.append(pytest.mark.skip(reason=answer.removeprefix("skip: ")))
                elif (bug := KNOWN_BUGS.get((*route, role, relation))) is not None:
                    marks.append(pytest.mark.xfail(strict=True, reason=bug))
                cases.append(pytest.param(case, id=case.id, marks=marks))
    return cases


# ── one request per case ────────────────────────────────────────────────────────────────────────────────────

MISSING_ID = 987_654_321
MISSING_AREA = "ZW-ZWZ-C99"


@dataclasses.dataclass
class Ctx:
    world: World
    role: str
    relation: str
    caller: Caller | None
    route: tuple[str, str, str | None]

    @property
    def own_area(self) -> str:
        return A_GRID if self.role == "grid_member" else A_COMMUNITY

    def area(self) -> str | None:
        """The area code an area-valued relation names (same area: a grid inside A; None: no parameter)."""
        return {NONE: None, OWN: self.own_area, SAME: A_GRID, OTHER: B_COMMUNITY, UNKNOWN: MISSING_AREA}[self.relation]

    def owner(self) -> Caller:
        """Whose object: the caller's own (the neighbour's when nobody is signed in), a neighbour's, an outsider's."""
        w = self.world
        if self.relation == OWN:
            return self.caller or w.neighbour
        return w.outsider if self.relation == OTHER else w.neighbour

    async def incident(self, state: str, **kwargs: Any) -> int:
        """The relation's incident in `state` (in A, or B for other_area); no incident at all for unknown."""
        if self.relation == UNKNOWN:
            return MISSING_ID
        return await self.world.incident(state, foreign=self.relation == OTHER, **kwargs)

    @property
    def own_reporter(self) -> int | None:
        """For "own": the caller reports the incident first; otherwise the default owner (World.incident)."""
        return self.caller.member_id if self.relation == OWN and self.caller else None

    async def victim(self) -> Caller:
        """A member the case may change for good: the caller, or a fresh courier of area A or B."""
        if self.relation == OWN:
            assert self.caller is not None or self.role == "anonymous"
            return self.caller or await self.world.sign_in_new("courier", [A_COMMUNITY])
        return await self.world.sign_in_new("courier", [B_COMMUNITY if self.relation == OTHER else A_COMMUNITY])


@dataclasses.dataclass
class Call:
    method: str
    url: str
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    stream: bool = False  # an endless response: only its status is read


Builder = Callable[[Ctx], Awaitable[Call]]
BUILDERS: dict[tuple[str, str, str | None], Builder] = {}


def builds(*routes: tuple[str, str, str | None]) -> Callable[[Builder], Builder]:
    def register(fn: Builder) -> Builder:
        for route in routes:
            assert route in TABLE, f"a builder for {route}, which the table does not have"
            BUILDERS[route] = fn
        return fn

    return register


def plain(method: str, path: str, variant: str | None = None, **kwargs: Any) -> None:
    """A route whose request never depends on the relation."""

    async def build(ctx: Ctx) -> Call:
        return Call(method, path, dict(kwargs))

    builds((method, path, variant))(build)


for _method, _path in (
    ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/api/v1/me"), ("GET", "/api/v1/privacy-notice"),
    ("DELETE", "/api/v1/sessions/current"), ("GET", "/api/v1/categories"), ("GET", "/api/v1/me/reports"),
    ("GET", "/api/v1/push/key"), ("GET", "/api/v1/push/subscriptions"), ("GET", "/api/v1/me/points"),
    ("GET", "/api/v1/me/points/ledger"),
    ("GET", "/api/v1/calendar/status"), ("GET", "/api/v1/admin/channels"), ("GET", "/api/v1/rewards"),
    ("GET", "/api/v1/me/redemptions"), ("GET", "/api/v1/redemptions"), ("GET", "/api/v1/review"),
    ("GET", "/api/v1/areas"), ("GET", "/"),
    *(("GET", f"/open311/v2/{name}.{fmt}") for name in ("discovery", "services", "requests", "servicerequestupdates")
      for fmt in ("json", "xml")),
    *(("GET", f"/schema{tail}") for tail in ("", "/swagger", "/redoc", "/rapidoc", "/elements", "/openapi.json",
                                             "/openapi.yaml", "/openapi.yml", "/oauth2-redirect.html")),
):
    plain(_method, _path)
plain("POST", "/api/v1/rewards", json={"name_zh": "雨衣", "cost": 1})


@builds(("POST", "/api/v1/push/subscriptions", None))
async def _subscribe(ctx: Ctx) -> Call:
    return Call("POST", "/api/v1/push/subscriptions", {"json": browser_subscription()})


@builds(("GET", "/schema/{path:str}", None))
async def _schema_page(ctx: Ctx) -> Call:
    return Call("GET", "/schema/no-such-page")


@builds(("GET", "/api/v1/events", None))
async def _events(ctx: Ctx) -> Call:
    return Call("GET", "/api/v1/events", stream=True)


@builds(("POST", "/api/v1/sessions", None))
async def _sign_in(ctx: Ctx) -> Call:
    w = ctx.world
    phone = w.phone()
    code = await issue_code(w.pool, w.settings, w.clock, role="courier", phone=phone, areas=[A_COMMUNITY],
                            platform="meituan")
    return Call("POST", "/api/v1/sessions", {"json": {"code": code, "phone_last4": phone[-4:], "accept_privacy": True}})


@builds(("POST", "/api/v1/enrolments", "new member"))
async def _enrol_new(ctx: Ctx) -> Call:
    return Call("POST", "/api/v1/enrolments", {"json": {
        "role": "courier", "display_name": "新骑手", "phone": ctx.world.phone(), "area_codes": [ctx.area()],
        "platform": "meituan"}})


@builds(("POST", "/api/v1/enrolments", "existing phone"))
async def _enrol_existing(ctx: Ctx) -> Call:
    # A lost phone: a new code for an existing member, asked into the caller's own area.
    victim = await ctx.victim()
    return Call("POST", "/api/v1/enrolments", {"json": {
        "role": "courier", "display_name": "换手机", "phone": victim.phone, "area_codes": [A_COMMUNITY],
        "platform": "meituan"}})


def _area_param(name: str, path: str, **extra: str) -> None:
    async def build(ctx: Ctx) -> Call:
        code = ctx.area()
        return Call("GET", path, {"params": {**extra, **({name: code} if code else {})}})

    builds(("GET", path, None))(build)


_area_param("area", "/api/v1/members")
_area_param("area", "/api/v1/incidents")
_area_param("area", "/api/v1/incidents.geojson")
for _path in ("/api/v1/rankings/riders", "/api/v1/rankings/teams", "/api/v1/dashboard",
              "/api/v1/exports/incidents.csv", "/api/v1/exports/rankings.csv", "/api/v1/areas/shapes"):
    _area_param("scope", _path)


@builds(("GET", "/api/v1/members/{member_id:int}", None))
async def _member(ctx: Ctx) -> Call:
    member_id = MISSING_ID if ctx.relation == UNKNOWN else ctx.owner().member_id
    return Call("GET", f"/api/v1/members/{member_id}")


@builds(("POST", "/api/v1/members/{member_id:int}/revoke-sessions", None),
        ("POST", "/api/v1/members/{member_id:int}/deactivate", None),
        ("PUT", "/api/v1/members/{member_id:int}/areas", None))
async def _act_on_member(ctx: Ctx) -> Call:
    member_id = MISSING_ID if ctx.relation == UNKNOWN else (await ctx.victim()).member_id
    if ctx.route[0] == "PUT":
        return Call("PUT", f"/api/v1/members/{member_id}/areas", {"json": {"area_codes": [A_GRID2]}})
    return Call("POST", ctx.route[1].replace("{member_id:int}", str(member_id)))


@builds(("POST", "/api/v1/categories", None))
async def _new_category(ctx: Ctx) -> Call:
    return Call("POST", "/api/v1/categories", {"json": {
        "code": f"t_{uuid.uuid4().hex[:12]}", "name_zh": "测试", "name_en": "test", "severity": "low",
        "life_safety": False, "merge_radius_m": 30, "merge_window_hours": 72, "weight": 0.5}})


@builds(("PATCH", "/api/v1/categories/{code:str}", None))
async def _patch_category(ctx: Ctx) -> Call:
    code = "no_such_category" if ctx.relation == UNKNOWN else "illegal_structure"
    return Call("PATCH", f"/api/v1/categories/{code}", {"json": {"name_en": "illegal structure"}})


@builds(("POST", "/api/v1/reports", None))
async def _post_report(ctx: Ctx) -> Call:
    lat, lon = point_in(A_GRID)
    return Call("POST", "/api/v1/reports", {"files": files(meta(ctx.world.clock, lat=lat, lon=lon))})


@builds(("GET", "/api/v1/reports/{report_id:int}", None))
async def _report(ctx: Ctx) -> Call:
    w = ctx.world
    report = MISSING_ID if ctx.relation == UNKNOWN else await make_report(w.pool, w.clock,
                                                                          reporter_id=ctx.owner().member_id)
    return Call("GET", f"/api/v1/reports/{report}")


@builds(("GET", "/api/v1/photos/{photo_id:int}/{variant:str}", None))
async def _photo(ctx: Ctx) -> Call:
    w = ctx.world
    photo = MISSING_ID if ctx.relation == UNKNOWN else w.photo_id
    return Call("GET", signed_photo_path(w.settings.url_signing_secret, photo, "thumb", w.clock.now()))


async def _subscription_of(ctx: Ctx) -> dict:
    """A subscription of the relation's owner, made through the API as that owner."""
    body = browser_subscription()
    reply = await ctx.world.client.post("/api/v1/push/subscriptions", json=body, headers=ctx.owner().headers)
    assert reply.status_code == 201, reply.text
    return {**body, "id": reply.json()["id"]}


@builds(("DELETE", "/api/v1/push/subscriptions", None))
async def _unsubscribe_by_endpoint(ctx: Ctx) -> Call:
    if ctx.relation == UNKNOWN:
        endpoint = browser_subscription()["endpoint"]
    else:
        endpoint = (await _subscription_of(ctx))["endpoint"]
    return Call("DELETE", "/api/v1/push/subscriptions", {"params": {"endpoint": endpoint}})


@builds(("DELETE", "/api/v1/push/subscriptions/{subscription_id:int}", None))
async def _unsubscribe(ctx: Ctx) -> Call:
    sub = MISSING_ID if ctx.relation == UNKNOWN else (await _subscription_of(ctx))["id"]
    return Call("DELETE", f"/api/v1/push/subscriptions/{sub}")


@builds(("GET", "/api/v1/incidents/nearby", None))
async def _nearby(ctx: Ctx) -> Call:
    lat, lon = point_in(A_GRID)
    return Call("GET", "/api/v1/incidents/nearby", {"params": {"lat": lat, "lon": lon}})


@builds(("GET", "/api/v1/incidents/{incident_id:int}", None))
async def _incident(ctx: Ctx) -> Call:
    return Call("GET", f"/api/v1/incidents/{await ctx.incident('dispatched', reporter=ctx.own_reporter)}")


@builds(("GET", "/api/v1/incidents/{incident_id:int}/transfer-targets", None))
async def _transfer_targets(ctx: Ctx) -> Call:
    return Call("GET", f"/api/v1/incidents/{await ctx.incident('dispatched')}/transfer-targets")


# action → (the state it starts from, extra incident columns, body)
ACTION_SETUP: dict[str, tuple[str, dict[str, str], dict[str, Any]]] = {
    "dispatch": ("unrouted", {}, {}),  # grid_code filled in per relation
    "accept": ("dispatched", {}, {}),
    "transfer": ("dispatched", {}, {}),  # grid_code filled in per relation
    "request_complex": ("accepted", {}, {"reason": "需要吊车"}),
    "approve_complex": ("accepted", {"complex_state": "requested"}, {}),
    "decline_complex": ("accepted", {"complex_state": "requested"}, {"reason": "一周内可以处理"}),
    "reject": ("dispatched", {}, {"reason": "not_a_hazard"}),
    "merge": ("dispatched", {}, {}),  # target filled in per relation
    "reopen": ("resolved", {}, {"note": "又出现了"}),
    "appeal": ("rejected", {}, {"reason": "隐患确实存在"}),
    "uphold_appeal": ("rejected", {"appeal_state": "pending"}, {}),
    "dismiss_appeal": ("rejected", {"appeal_state": "pending"}, {"reason": "照片看不出隐患"}),
}


def _action_builder(action: str) -> Builder:
    state, columns, body = ACTION_SETUP[action]

    async def build(ctx: Ctx) -> Call:
        w = ctx.world
        body_now = dict(body)
        other = ctx.relation == OTHER
        if action == "dispatch":
            body_now["grid_code"] = B_GRID if other else A_GRID
        if action == "transfer":
            body_now["grid_code"] = B_GRID2 if other else A_GRID2
        # An appeal's "own" incident is one the caller reported first.
        incident = await ctx.incident(state, reporter=ctx.own_reporter, **columns)
        if action == "merge":
            body_now["target_incident_id"] = await w.incident("dispatched", foreign=other)
        return Call("POST", f"/api/v1/incidents/{incident}/{action}", {"json": body_now})

    return build


for _action in ACTION_SETUP:
    builds(("POST", ACTION, _action))(_action_builder(_action))


@builds(("POST", "/api/v1/incidents/{incident_id:int}/resolve", None))
async def _resolve(ctx: Ctx) -> Call:
    w = ctx.world
    incident = await ctx.incident("accepted")
    parts = [("meta", ("meta.json", msgspec.json.encode({"note": "已清理"}), "application/json")),
             ("photo", ("proof.jpg", w.proof_photo, "image/jpeg"))]
    return Call("POST", f"/api/v1/incidents/{incident}/resolve", {"files": parts})


@builds(("POST", "/api/v1/incidents/{incident_id:int}/verifications", None))
async def _verify(ctx: Ctx) -> Call:
    w = ctx.world
    if ctx.relation == UNKNOWN:
        incident, lat, lon = MISSING_ID, *point_in(A_GRID)
    else:
        incident = await ctx.incident("dispatched")
        lat, lon = await w.pool.fetchrow("SELECT lat, lon FROM incidents WHERE id = $1", incident)
    # Standing on the hazard: the 300 m rule is met, so only who asks decides.
    return Call("POST", f"/api/v1/incidents/{incident}/verifications",
                {"json": {"answer": "still_there", "lat": lat, "lon": lon}})


@builds(*((method, "/api/v1/areas/{code:str}/wecom", None) for method in ("GET", "PUT", "DELETE")))
async def _wecom(ctx: Ctx) -> Call:
    method, path, _ = ctx.route
    url = path.replace("{code:str}", ctx.area())
    hook = {"webhook_url": f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={uuid.uuid4()}"}
    if method == "PUT":
        return Call("PUT", url, {"json": hook})
    if method == "DELETE" and ctx.relation != UNKNOWN:
        # Something to delete: the admin sets the area's robot first (deleting nothing would be a 404 anyway).
        reply = await ctx.world.client.put(url, json=hook, headers=ctx.world.callers["admin"].headers)
        assert reply.status_code == 200, reply.text
    return Call(method, url)


@builds(("PATCH", "/api/v1/rewards/{reward_id:int}", None))
async def _patch_reward(ctx: Ctx) -> Call:
    reward = MISSING_ID if ctx.relation == UNKNOWN else ctx.world.reward_id
    return Call("PATCH", f"/api/v1/rewards/{reward}", {"json": {"enabled": True}})


@builds(("POST", "/api/v1/redemptions", None))
async def _redeem(ctx: Ctx) -> Call:
    return Call("POST", "/api/v1/redemptions", {"json": {"reward_id": ctx.world.reward_id}})


@builds(*(("POST", f"/api/v1/redemptions/{{redemption_id:int}}/{verb}", None) for verb in ("approve", "decline")))
async def _decide_redemption(ctx: Ctx) -> Call:
    w = ctx.world
    if ctx.relation == UNKNOWN:
        redemption = MISSING_ID
    else:
        reply = await w.client.post("/api/v1/redemptions", json={"reward_id": w.reward_id}, headers=ctx.owner().headers)
        assert reply.status_code == 201, reply.text
        redemption = reply.json()["id"]
    verb = ctx.route[1].rsplit("/", 1)[1]
    return Call("POST", f"/api/v1/redemptions/{redemption}/{verb}",
                {"json": {"reason": "本月已兑完"}} if verb == "decline" else {})


@builds(*(("POST", f"/api/v1/review/flags/{{flag_id:int}}/{verb}", None) for verb in ("clear", "confirm")))
async def _decide_flag(ctx: Ctx) -> Call:
    w = ctx.world
    if ctx.relation == UNKNOWN:
        flag = MISSING_ID
    else:
        rider = ctx.owner().member_id
        report = await make_report(w.pool, w.clock, reporter_id=rider)
        flag = await w.pool.fetchval(
            "INSERT INTO flags (kind, member_id, report_id) VALUES ('burst', $1, $2) RETURNING id", rider, report)
    verb = ctx.route[1].rsplit("/", 1)[1]
    return Call("POST", f"/api/v1/review/flags/{flag}/{verb}",
                {"json": {"reason": "同一地点连续上报"}} if verb == "confirm" else {})


@builds(("POST", "/api/v1/areas/import", None))
async def _import_areas(ctx: Ctx) -> Call:
    # A dry run: the same checks and report as a real import, and the demo town stays as it is.
    return Call("POST", "/api/v1/areas/import", {"params": {"dry_run": "true"},
                                                 "content": msgspec.json.encode(collection(new_town()))})


def _open311_form(ctx: Ctx) -> dict[str, str]:
    lat, lon = point_in(B_GRID if ctx.relation == OTHER else A_GRID)
    form = {"service_code": "garbage_pileup", "lat": str(lat), "long": str(lon), "description": "门口垃圾堆了三天",
            "attribute[client_id]": str(uuid.uuid4())}
    if ctx.relation in (OWN, OTHER):
        form["api_key"] = ctx.world.open311_key
    elif ctx.relation == UNKNOWN:
        form["api_key"] = "not-a-key-" + uuid.uuid4().hex
    return form


@builds(*(("POST", f"/open311/v2/requests.{fmt}", None) for fmt in ("json", "xml")))
async def _open311_post(ctx: Ctx) -> Call:
    return Call("POST", ctx.route[1], {"data": _open311_form(ctx)})


@builds(("GET", "/open311/v2/services/{name:str}", None))
async def _open311_service(ctx: Ctx) -> Call:
    code = "no_such_service" if ctx.relation == UNKNOWN else "garbage_pileup"
    return Call("GET", f"/open311/v2/services/{code}.json")


@builds(("GET", "/open311/v2/requests/{name:str}", None))
async def _open311_request(ctx: Ctx) -> Call:
    return Call("GET", f"/open311/v2/requests/{await ctx.incident('dispatched')}.json")


@builds(("GET", "/open311/v2/tokens/{name:str}", None))
async def _open311_token(ctx: Ctx) -> Call:
    if ctx.relation == UNKNOWN:
        token = str(uuid.uuid4())
    else:
        reply = await ctx.world.client.post("/open311/v2/requests.json", data=_open311_form(ctx))
        assert reply.status_code == 201, reply.text
        token = reply.json()[0]["token"]
    return Call("GET", f"/open311/v2/tokens/{token}.json")


@builds(*((method, "/open311/v2/{name:str}", None) for method in ("GET", "POST")))
async def _open311_unknown(ctx: Ctx) -> Call:
    return Call(ctx.route[0], "/open311/v2/no-such-resource.json")


@builds(*((method, "/{file_path:path}", None) for method in ("GET", "HEAD")))
async def _pwa_file(ctx: Ctx) -> Call:
    return Call(ctx.route[0], "/no-such-file.js" if ctx.relation == UNKNOWN else "/manifest.webmanifest")


@builds(("OPTIONS", "*", None))
async def _options(ctx: Ctx) -> Call:
    return Call("OPTIONS", "/api/v1/me")


# ── fixtures ────────────────────────────────────────────────────────────────────────────────────────────────

@pytest_asyncio.fixture(scope="module")
async def world(tmp_path_factory, database_url, redis_url, vapid_pem, street_photos):
    async with build_world(tmp_path_factory.mktemp("authz") / "data", database_url, redis_url, vapid_pem,
                           street_photos[0]) as w:
        yield w


async def stream_status(app: Any, method: str, url: str, headers: dict[str, str]) -> int:
    """The status of an endless response (the event stream): read the start, then hang up like a closed tab."""
    path, _, query = url.partition("?")
    started, hung_up = asyncio.Event(), asyncio.Event()
    status: list[int] = []
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await hung_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
            started.set()

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": query.encode(),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80), "state": {}}
    task = asyncio.create_task(app(scope, receive, send))
    try:
        await asyncio.wait_for(started.wait(), timeout=10)
    finally:
        hung_up.set()
        try:
            await asyncio.wait_for(task, timeout=10)
        except TimeoutError:
            task.cancel()
    return status[0]


async def stream_status_via(client: AsyncTestClient, method: str, url: str, headers: dict[str, str]) -> int:
    """`stream_status` on the loop the app lives on: AsyncTestClient runs the app (and its pool) in a portal
    thread, and asyncpg connections only work on the loop that opened them."""
    portal = client.blocking_portal
    return await asyncio.to_thread(portal.call, stream_status, client.app, method, url, headers)


def answer_class(status: int) -> str:
    return OK if 200 <= status < 300 else str(status)


# ── the tests ───────────────────────────────────────────────────────────────────────────────────────────────

def routes_of(app: Any) -> set[tuple[str, str]]:
    """(method, path template) of every handler the app serves; Litestar's own OPTIONS handlers as one."""
    found = set()
    for route in app.routes:
        for handler in route.route_handlers:
            for method in handler.http_methods:
                found.add(("OPTIONS", "*") if method == "OPTIONS" else (method, route.path))
    return found


async def test_every_route_of_the_app_has_an_entry(world):
    in_table = {(method, path) for method, path, _ in TABLE}
    served = routes_of(world.app)
    assert not served - in_table, f"routes with no entry in the authorisation table: {sorted(served - in_table)}"
    assert not in_table - served, f"table entries for routes the app does not have: {sorted(in_table - served)}"


def test_every_incident_action_has_an_entry():
    from gridrider.domain.workflow import ACTIONS

    # `resolve` has its own multipart route; every other action goes through the generic action route.
    in_table = {variant for method, path, variant in TABLE if path == ACTION}
    assert in_table == set(ACTIONS) - {"resolve"}


def test_every_entry_has_a_request_builder_and_an_answer_for_every_case():
    assert set(BUILDERS) == set(TABLE)
    for route, entry in TABLE.items():
        for role in ROLES:
            for relation in entry["rel"]:
                answer = expected(route, role, relation)
                assert answer in (OK, R401, R403, R404) or answer.startswith("skip: "), (route, role, relation)


@pytest.mark.parametrize("case", all_cases())
async def test_the_answer_is_the_one_the_table_gives(world, case: Case):
    entry = TABLE[case.route]
    caller = None
    if case.role != "anonymous":
        caller = (await world.sign_in_new(case.role) if entry.get("fresh")
                  else world.callers[case.role])
    call = await BUILDERS[case.route](Ctx(world, case.role, case.relation, caller, case.route))
    headers = {**call.kwargs.pop("headers", {}), **(caller.headers if caller else {})}
    if call.stream:
        status, text = await stream_status_via(world.client, call.method, call.url, headers), ""
    else:
        reply = await world.client.request(call.method, call.url, headers=headers, **call.kwargs)
        status, text = reply.status_code, reply.text[:300]
        if status == 404 and case.relation in (OTHER, UNKNOWN):
            NOT_FOUND[(case.route, case.role, case.relation)] = _problem_code(reply)
    want = expected(case.route, case.role, case.relation)
    assert answer_class(status) == want, f"{case.id}: expected {want}, got {status} {call.method} {call.url} {text}"


# (route, role, relation) → the `code` of each 404 seen above, compared below.
NOT_FOUND: dict[tuple[tuple[str, str, str | None], str, str], str | None] = {}


def _problem_code(reply: Any) -> str | None:
    try:
        body = reply.json()
    except ValueError:
        return reply.text  # Open311 XML, or a static 404 page: compared whole
    return body.get("code") if isinstance(body, dict) else str(body)


def test_a_foreign_object_is_refused_exactly_like_a_missing_one():
    """Beyond the status (§8: 404), the problem `code` must not tell "elsewhere" from "nowhere"."""
    pairs = [(key[:2], code, NOT_FOUND.get((*key[:2], UNKNOWN))) for key, code in NOT_FOUND.items() if key[2] == OTHER]
    pairs = [(where, foreign, missing) for where, foreign, missing in pairs if missing is not None]
    if not pairs:
        pytest.skip("runs after the matrix cases, from what they saw")
    assert [p for p in pairs if p[1] != p[2]] == []
