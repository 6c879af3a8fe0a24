"""CSV exports for supervisors (UX.md: 导出).

`GET /api/v1/exports/incidents.csv?scope=&from=&to=&lang=` (supervisor, admin): one row per incident
created between `from` and `to` (Asia/Shanghai days, both included, at most 366; default this month
up to today — api/day_range.py, as the dashboard) in the area `scope` (default: everything the caller
sees), oldest first.

- An unknown `scope`, or one outside the caller's subtree, is the same 404 `area_not_found`
  (api/auth.scope_paths). Bad dates are 422 with `date_*` field codes.
- `lang`: `zh` (default) or `en`; without it, Accept-Language decides as for every message. Headers,
  category, area, state, stage and reason names follow it.
- Phones: whole for supervisors, masked (138****5678) for everyone else — admins included (DESIGN.md
  §8: "exports mask phones except for supervisors").
- Text cells that could start a spreadsheet formula are neutralised (domain/csv_export.py); numbers
  (ids, coordinates, counts) stay numbers.
- Streamed in constant memory: a server-side cursor on a connection held for the download only
  (db/exports.py), encoded every few hundred rows, UTF-8 with a BOM so Excel reads the Chinese.

`GET /api/v1/exports/rankings.csv?period=month|quarter|year&at=&scope=&platform=&lang=` (supervisor,
admin): every ranked rider of the ranking `GET /api/v1/rankings/riders` pages through 50 at a time —
same period, scope and platform rules and errors (api/rankings.py), same riders, same competition
ranks (ties share one) — points first. Phones, languages, neutralisation and streaming as above.
Rates are percentages with one decimal; the median time from report to acceptance is in whole
seconds (a number a spreadsheet can sort and average; "mm:ss" text would be read as a time of day).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, get
from litestar.background_tasks import BackgroundTask
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Stream

from gridrider.api.auth import roles, scope_paths
from gridrider.api.day_range import day_range
from gridrider.api.problems import request_language
from gridrider.api.rankings import AreaScope, At, PeriodKind
from gridrider.clock import local_day, local_day_start
from gridrider.db import exports as db
from gridrider.db.members import MemberRow
from gridrider.db.pool import Pool
from gridrider.domain import csv_export, rankings
from gridrider.domain.csv_export import Cell
from gridrider.domain.members import PLATFORMS, mask_phone
from gridrider.errors import FieldError, RateLimited, ValidationFailed, message_for
from gridrider.services import Services


class ExportSlots:
    """Downloads in progress in this process. Each holds a pooled connection while the client reads,
    so a few supervisors pressing 导出 repeatedly must not take the pool from everyone else. A soft
    cap: it is checked in the handler and counted once the body starts."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def full(self) -> bool:
        return self.open >= self.limit


EXPORT_SLOTS = ExportSlots(limit=4)
EXPORT_BUSY_RETRY_S = 30

# (zh-CN, en) of every column, in the order of db.INCIDENTS_EXPORT_SQL after mapping.
INCIDENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("事件编号", "Incident ID"), ("创建时间", "Created"), ("类别", "Category"), ("状态", "State"),
    ("区域编码", "Area code"), ("区域名称", "Area name"), ("纬度", "Latitude"), ("经度", "Longitude"),
    ("上报数", "Reports"), ("首报人", "First reporter"), ("首报人电话", "First reporter phone"),
    ("派发时间", "Dispatched"), ("受理时间", "Accepted"), ("处理时间", "Resolved"), ("办结时间", "Closed"),
    ("超时环节", "Overdue stages"), ("退回原因", "Reject reason"), ("首报备注", "Origin report note"),
)
STATE_NAMES = {
    "unrouted": ("待派发", "awaiting dispatch"), "dispatched": ("已派发", "dispatched"),
    "accepted": ("已受理", "accepted"), "resolved": ("已处理", "resolved"), "closed": ("已办结", "closed"),
    "rejected": ("未采纳", "rejected"), "merged": ("已合并", "merged"),
}
STAGE_NAMES = (("派发", "dispatch"), ("受理", "accept"), ("处理", "resolve"))
REJECT_REASON_NAMES = {
    "not_a_hazard": ("不属于隐患", "not a hazard"), "cannot_locate": ("现场找不到", "could not be located"),
    "out_of_scope": ("不在受理范围", "out of scope"),
}


# (zh-CN, en) of every column of rankings.csv, in the order of rider_cells.
RIDER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("名次", "Rank"), ("排名前(%)", "Top (%)"), ("成员编号", "Member ID"), ("化名", "Pseudonym"), ("姓名", "Name"),
    ("手机号", "Phone"), ("平台", "Platform"), ("积分", "Points"), ("上报数", "Reports"),
    ("被受理上报数", "Accepted reports"), ("首报数", "First discoveries"), ("佐证数", "Corroborations"),
    ("受理率(%)", "Acceptance rate (%)"), ("重复率(%)", "Duplicate rate (%)"),
    ("上报到受理中位时长(秒)", "Median report to acceptance (s)"), ("待处理标记", "Open flags"),
)
PLATFORM_NAMES = {
    "meituan": ("美团", "Meituan"), "eleme": ("饿了么", "Ele.me"), "sf": ("顺丰", "SF Express"),
    "jd": ("京东", "JD"), "other": ("其他", "Other"),
}


def _pick(pair: tuple[str, str], lang: str) -> str:
    return pair[1] if lang == "en" else pair[0]


def export_language(lang: str | None, request: Request[Any, Any, Any]) -> str:
    """'en' or 'zh-CN': the `lang` parameter when given, else Accept-Language (Chinese by default)."""
    if lang is None:
        return request_language(request)
    wanted = lang.strip().lower()
    if wanted in ("zh", "zh-cn", "zh-hans"):
        return "zh-CN"
    if wanted == "en" or wanted.startswith("en-"):
        return "en"
    raise ValidationFailed(errors=[FieldError("lang", "export_lang_unsupported", message_for(
        "export_lang_unsupported", "zh-CN"))])


def incident_cells(lang: str, *, whole_phones: bool) -> Callable[[asyncpg.Record], list[Cell]]:
    """Maps one export row to its cells; the labels are looked up once per export, not per row."""
    states = {code: _pick(pair, lang) for code, pair in STATE_NAMES.items()}
    reasons = {code: _pick(pair, lang) for code, pair in REJECT_REASON_NAMES.items()}
    separator = "; " if lang == "en" else "、"
    stages = [_pick(pair, lang) for pair in STAGE_NAMES]
    overdue = {
        (d, a, r): separator.join(name for name, late in zip(stages, (d, a, r), strict=True) if late) or None
        for d in (False, True) for a in (False, True) for r in (False, True)
    }

    def cells(row: asyncpg.Record) -> list[Cell]:
        (incident_id, created, category, state, area_code, area_name, lat, lon, report_count, pseudonym, phone,
         dispatched, accepted, resolved, closed, dispatch_late, accept_late, resolve_late, reject_reason,
         note) = row
        return [
            incident_id, created, category, states.get(state, state), area_code, area_name, lat, lon, report_count,
            pseudonym, phone if whole_phones else mask_phone(phone), dispatched, accepted, resolved, closed,
            overdue[dispatch_late, accept_late, resolve_late],
            reasons.get(reject_reason, reject_reason) if reject_reason else None, note,
        ]

    return cells


def rider_cells(lang: str, *, whole_phones: bool) -> Callable[[asyncpg.Record], list[Cell]]:
    """Maps one row of db.RIDERS_EXPORT_SQL to its cells."""
    platforms = {code: _pick(pair, lang) for code, pair in PLATFORM_NAMES.items()}

    def cells(row: asyncpg.Record) -> list[Cell]:
        (rank, ranked, member_id, pseudonym, name, phone, platform, points, reports, accepted, first_reports,
         corroborations, acceptance_pct, duplicate_pct, median_accept_s, open_flags) = row
        return [
            rank, rankings.top_percent(rank, ranked), member_id, pseudonym, name,
            phone if whole_phones else mask_phone(phone), platforms.get(platform, platform) if platform else None,
            points, reports, accepted, first_reports, corroborations, acceptance_pct, duplicate_pct,
            # Rounded as the ranking page rounds it, so the file and the page show the same seconds.
            round(median_accept_s) if median_accept_s is not None else None, open_flags,
        ]

    return cells


def _scope_label(me: MemberRow, area: str | None) -> str:
    """What a file name says about the scope: the area asked for, the caller's one area, or `all`."""
    return area or (me.area_codes[0] if me.role != "admin" and len(me.area_codes) == 1 else "all")


def _download(rows: Callable[[], AbstractAsyncContextManager[AsyncIterator[asyncpg.Record]]], header: list[str],
              cells: Callable[[asyncpg.Record], list[Cell]], *, filename: str, language: str) -> Stream:
    """The streamed CSV response of one export; `rows` opens the export's cursor when the body starts."""

    async def body() -> AsyncIterator[bytes]:
        # Nothing is acquired before the first chunk is asked for: a response that never starts
        # its body (the client left while headers were sent) holds no connection.
        EXPORT_SLOTS.open += 1
        try:
            async with rows() as records:
                mapped = (cells(record) async for record in records)
                async with contextlib.aclosing(csv_export.encode_csv(header, mapped)) as chunks:
                    async for chunk in chunks:
                        yield chunk
        finally:
            EXPORT_SLOTS.open -= 1

    chunks = body()
    return Stream(
        chunks, media_type="text/csv",
        headers={**csv_export.attachment_headers(filename), "Content-Language": language},
        # When the client disconnects Litestar cancels the task iterating `chunks`. Usually that
        # lands inside it (waiting for rows) and its clean-up runs there; landing while it waits at
        # a `yield`, it would be left suspended until garbage collection. Litestar runs this after
        # the body in both cases (and after a normal end, where closing is a no-op).
        background=BackgroundTask(chunks.aclose),
    )


class ExportController(Controller):
    path = "/api/v1/exports"

    @get("/incidents.csv", operation_id="exportIncidentsCsv", opt=roles("supervisor", "admin"),
         media_type="text/csv")
    async def incidents_csv(
        self, request: Request[Any, Any, Any], me: NamedDependency[MemberRow], services: NamedDependency[Services],
        # `scope` is the ASGI scope to Litestar and `from` a Python keyword, hence the aliases.
        area: Annotated[str | None, QueryParameter(name="scope", max_length=64)] = None,
        from_: Annotated[str | None, QueryParameter(name="from", max_length=32)] = None,
        to: Annotated[str | None, QueryParameter(max_length=32)] = None,
        lang: Annotated[str | None, QueryParameter(max_length=16)] = None,
    ) -> Stream:
        language = export_language(lang, request)
        first, last = day_range(from_, to, local_day(services.clock.now()))
        visible = await scope_paths(services.pool, me, area)
        if EXPORT_SLOTS.full():
            raise RateLimited(EXPORT_BUSY_RETRY_S)

        query = db.IncidentExportQuery(
            start=local_day_start(first), end=local_day_start(last + dt.timedelta(days=1)), lang=language,
            subtree_paths=visible,
        )
        pool = services.pool
        return _download(
            lambda: db.incident_rows(pool, query), [_pick(pair, language) for pair in INCIDENT_COLUMNS],
            incident_cells(language, whole_phones=me.role == "supervisor"),
            filename=f"incidents-{_scope_label(me, area)}-{first.isoformat()}-{last.isoformat()}.csv",
            language=language,
        )

    @get("/rankings.csv", operation_id="exportRankingsCsv", opt=roles("supervisor", "admin"),
         media_type="text/csv")
    async def rankings_csv(
        self, request: Request[Any, Any, Any], me: NamedDependency[MemberRow], services: NamedDependency[Services],
        read_pool: NamedDependency[Pool], period: PeriodKind = "month", at: At = None, area: AreaScope = None,
        platform: Annotated[str | None, QueryParameter(max_length=16)] = None,
        lang: Annotated[str | None, QueryParameter(max_length=16)] = None,
    ) -> Stream:
        language = export_language(lang, request)
        if platform is not None and platform not in PLATFORMS:
            raise ValidationFailed(errors=[FieldError("platform", "invalid", "平台筛选无效。")])
        wanted = rankings.period_of(period, at, services.clock.now())
        # The ranking page's figures, so from where the page reads them: the replica when there is one
        # (api/deps.provide_read_pool).
        visible = await scope_paths(read_pool, me, area)
        if EXPORT_SLOTS.full():
            raise RateLimited(EXPORT_BUSY_RETRY_S)

        query = db.RankingExportQuery(period=wanted.key, subtree_paths=visible, platform=platform)
        suffix = f"-{platform}" if platform else ""
        return _download(
            lambda: db.ranking_rows(read_pool, query), [_pick(pair, language) for pair in RIDER_COLUMNS],
            rider_cells(language, whole_phones=me.role == "supervisor"),
            filename=f"rankings-{_scope_label(me, area)}-{wanted.key}{suffix}.csv", language=language,
        )
