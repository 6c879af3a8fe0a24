"""RFC 9457 problem+json for every error, with a machine `code` and a message in the caller's language."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import msgspec
import redis.exceptions
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from gridrider.errors import DomainError, FieldError, localise_field_error, message_for
from gridrider.logging import get_logger

log = get_logger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"

# Litestar's own HTTP errors, by status, get stable codes too.
CODE_OF_STATUS = {
    400: "malformed_body",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "service_unavailable",
}


class Problem(msgspec.Struct, omit_defaults=True):
    type: str
    title: str
    status: int
    code: str
    detail: str = ""
    errors: list[FieldError] = msgspec.field(default_factory=list)


def request_language(request: Request[Any, Any, Any]) -> str:
    """'en' when the caller prefers English over Chinese, else 'zh-CN' (the default for everyone)."""
    header = request.headers.get("accept-language", "")
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, index, tag.strip().lower()))
    for _q, _i, tag in sorted(ranked):
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return "zh-CN"


def problem_response(
    request: Request[Any, Any, Any], *, status: int, code: str, errors: list[FieldError] | None = None,
    detail: str = "", headers: dict[str, str] | None = None,
) -> Response[Problem]:
    lang = request_language(request)
    body = Problem(
        type=f"https://gridrider.invalid/problems/{code}", title=message_for(code, lang), status=status,
        code=code, detail=detail, errors=errors or [],
    )
    return Response(
        body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers={"Content-Language": lang, **(headers or {})},
    )


_NAMED_FIELD = re.compile(r"(?:unknown field|required field) `([^`]+)`")
_FIELD_MESSAGES = {
    "required": ("缺少必填字段 {field}。", "The field {field} is required."),
    "unknown_field": ("不支持的字段 {field}。", "The field {field} is not accepted."),
    "invalid": ("字段 {field} 的值无效。", "The value of {field} is invalid."),
}


def msgspec_field_error(raw: str, *, key: str, lang: str = "zh-CN") -> FieldError:
    """One msgspec validation message as {field, code, message}: the one place that reads its wording."""
    lowered = raw.lower()
    code = "required" if "required" in lowered else "unknown_field" if "unknown field" in lowered else "invalid"
    field = key
    if named := _NAMED_FIELD.search(raw):
        # msgspec names the offending field in the message when the key is the whole body.
        field = named.group(1) if key in ("data", "body", "meta") else f"{key}.{named.group(1)}"
    elif "$." in raw:
        field = raw.rsplit("$.", 1)[-1].rstrip("`")
    zh, en = _FIELD_MESSAGES[code]
    message = (en if lang == "en" else zh).format(field=field)
    if code == "invalid" and lang == "en" and raw:
        message = f"{message} {raw.split(' - at ')[0]}"
    return FieldError(field=field, code=code, message=message)


def _field_errors(exc: ValidationException, lang: str) -> list[FieldError]:
    """Litestar/msgspec validation details as [{field, code, message}], the message in the caller's language."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    return [
        msgspec_field_error(str(item.get("message", "")), key=str(item.get("key") or item.get("source") or "body"),
                            lang=lang)
        for item in extra if isinstance(item, dict)
    ]


def handle_domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[Problem]:
    lang = request_language(request)
    errors = [localise_field_error(error, lang) for error in exc.errors]
    return problem_response(request, status=exc.status, code=exc.code, errors=errors, headers=exc.headers)


def handle_validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Problem]:
    errors = _field_errors(exc, request_language(request))
    if not errors:
        # A body that could not be parsed at all (bad JSON, broken multipart) rather than a bad field.
        return problem_response(request, status=400, code="malformed_body", detail=str(exc.detail)[:300])
    return problem_response(request, status=422, code="validation_failed", errors=errors)


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    status = exc.status_code
    code = CODE_OF_STATUS.get(status, "internal" if status >= 500 else "malformed_body")
    return problem_response(request, status=status, code=code, headers=exc.headers)


def handle_text_refused_by_postgres(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """A NUL (or a character the database cannot store) in any text that reached SQL: the caller's input,
    so a 422 — one rule for every field instead of a check on each (tests/security/test_hostile_text.py)."""
    return problem_response(request, status=422, code="text_invalid_character")


def handle_server_unreachable(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """PostgreSQL (or another server the request needs) went away mid-request: restarting, unreachable, its
    connection dropped; or the transaction lost a deadlock and was rolled back. Nothing was committed that
    the caller was not told of — a report's INSERT and its answer share one transaction — so 503 with
    Retry-After tells the outbox to resend, which is safe (client_id). The fault suite (tests/faults) saw
    these as 500s before this handler."""
    log.warning("api.server_unreachable", path=request.url.path, method=request.method, error=type(exc).__name__)
    return problem_response(request, status=503, code="service_unavailable", headers={"Retry-After": "2"})


# What asyncpg says when a request's connection went away under it (the server restarted): the pool already
# took the broken connection back, or it is closed. Only these InterfaceErrors are the server's going;
# any other (an operation already in progress, …) is our bug and stays a 500.
_CONNECTION_GONE = ("connection has been released back to the pool", "connection is closed")


def handle_interface_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    if any(text in str(exc) for text in _CONNECTION_GONE):
        return handle_server_unreachable(request, exc)
    return handle_unexpected(request, exc)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    log.exception("api.unhandled", path=request.url.path, method=request.method, error=type(exc).__name__)
    return problem_response(request, status=HTTP_500_INTERNAL_SERVER_ERROR, code="internal")


EXCEPTION_HANDLERS = {
    DomainError: handle_domain_error,
    asyncpg.exceptions.CharacterNotInRepertoireError: handle_text_refused_by_postgres,
    asyncpg.exceptions.UntranslatableCharacterError: handle_text_refused_by_postgres,
    ValidationException: handle_validation_error,
    HTTPException: handle_http_exception,
    # Nothing was committed and a retry will do: two transactions waited on each other, or a snapshot
    # conflict. Lock orders are kept to avoid these (jobs/awards.py); this is the answer if one still happens.
    asyncpg.exceptions.DeadlockDetectedError: handle_server_unreachable,
    asyncpg.exceptions.SerializationError: handle_server_unreachable,
    # A lost connection, a server starting up or shutting down, a pool that could not connect in time.
    asyncpg.PostgresConnectionError: handle_server_unreachable,
    asyncpg.exceptions.OperatorInterventionError: handle_server_unreachable,
    asyncpg.exceptions.TargetServerAttributeNotMatched: handle_server_unreachable,
    asyncpg.InterfaceError: handle_interface_error,
    OSError: handle_server_unreachable,
    TimeoutError: handle_server_unreachable,
    redis.exceptions.ConnectionError: handle_server_unreachable,
    redis.exceptions.TimeoutError: handle_server_unreachable,
    Exception: handle_unexpected,
}
