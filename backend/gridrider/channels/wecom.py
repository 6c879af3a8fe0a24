"""The WeCom group robot (企业微信群机器人, DESIGN.md §5): a markdown card per incident in a grid's team chat.

A robot is a webhook URL with a secret key: whoever holds the URL posts into the group. So the URL
is accepted only in exactly WeCom's form (`check_webhook_url`), stored only encrypted
(db/webhooks.py), and never logged — logs name a robot by `robot_id`, a hash of its key.

Sending goes through the same vetted outbound network as Web Push (push/network.py): the host is
resolved once, every address must be public, redirects are never followed. WeCom answers HTTP 200
with an `errcode`; `WeComResult` says whether the message went, may be retried (and when), or the
robot is gone (removed from the group, webhook reset) and should be forgotten.

WeCom accepts 20 messages per minute per robot; `RobotRateLimiter` counts them in Redis across all
processes, and a caller whose robot has no budget left folds the waiting incidents into one
`batch_card` once it has.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import math
import re
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

import httpcore
import httpx
import msgspec
from redis.asyncio import Redis

from gridrider.clock import Clock, format_local
from gridrider.errors import MESSAGES, DomainError, FieldError
from gridrider.logging import get_logger
from gridrider.push.network import PUBLIC_INTERNET, AddressRefused, PushNetwork, vetted_client
from gridrider.redis_errors import REDIS_TROUBLE

if TYPE_CHECKING:
    from gridrider.db.notifications import NotificationContext

log = get_logger(__name__)

WECOM_HOST = "qyapi.weixin.qq.com"
WECOM_PATH = "/cgi-bin/webhook/send"
MAX_WEBHOOK_URL_CHARS = 200  # the real ones are 88 characters
MAX_CONTENT_BYTES = 4096  # WeCom's limit on markdown.content, in UTF-8 bytes
ELLIPSIS = "…"

# ── the webhook URL ───────────────────────────────────────────────────────────────────────────────

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_FORBIDDEN_CHARS = re.compile(r"[\s\\\x00-\x1f\x7f]")

# One problem code for the whole answer; the field error says which rule the URL broke (texts in errors.py).
WEBHOOK_REASONS = frozenset(code for code in MESSAGES if code.startswith("wecom_webhook_"))


class WeComWebhookInvalid(DomainError):
    """Not exactly `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=<uuid>`; the field error names the rule."""

    status, code = 422, "wecom_webhook_invalid"

    def __init__(self, reason: str) -> None:
        assert reason in WEBHOOK_REASONS, reason
        # Never the URL itself in the detail: it is a secret and details reach logs.
        super().__init__(reason, errors=[FieldError("webhook_url", reason, MESSAGES[reason][0])])
        self.reason = reason


class CheckedWebhook(msgspec.Struct, frozen=True):
    url: str  # rebuilt from the parts checked, never the caller's spelling
    key: str

    @property
    def key_hint(self) -> str:
        return self.key[-4:]


def check_webhook_url(url: str) -> CheckedWebhook:
    """The webhook if `url` is exactly WeCom's form; WeComWebhookInvalid naming the first rule broken."""
    if not isinstance(url, str) or not url or len(url) > MAX_WEBHOOK_URL_CHARS or _FORBIDDEN_CHARS.search(url):
        raise WeComWebhookInvalid("wecom_webhook_malformed")
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise WeComWebhookInvalid("wecom_webhook_malformed")
    if scheme.lower() != "https":
        raise WeComWebhookInvalid("wecom_webhook_not_https")
    # The authority ends at the first "/", "?" or "#" — what a URL parser and httpx take as the host.
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in authority:
        raise WeComWebhookInvalid("wecom_webhook_userinfo")
    host, port = authority, None
    if ":" in authority:
        host, _, port = authority.partition(":")
    if host.lower() != WECOM_HOST:
        raise WeComWebhookInvalid("wecom_webhook_host")
    if port is not None and port != "443":
        raise WeComWebhookInvalid("wecom_webhook_port")
    remainder = rest[len(authority):]
    if "#" in remainder:
        raise WeComWebhookInvalid("wecom_webhook_malformed")
    path, sep, query = remainder.partition("?")
    if path != WECOM_PATH:
        raise WeComWebhookInvalid("wecom_webhook_path")
    name, eq, key = query.partition("=")
    if not sep or name != "key" or not eq or "&" in query or ";" in query:
        raise WeComWebhookInvalid("wecom_webhook_query")
    if not _UUID.fullmatch(key):
        raise WeComWebhookInvalid("wecom_webhook_key")
    return CheckedWebhook(url=f"https://{WECOM_HOST}{WECOM_PATH}?key={key}", key=key)


_KEY_IN_TEXT = re.compile(r"([?&]key=)[^&\s\"']+")


def redact(text: str) -> str:
    """`text` with any robot key in a URL query replaced."""
    return _KEY_IN_TEXT.sub(r"\1<redacted>", text)


class _RedactRobotKeys(logging.Filter):
    """httpx logs every request's full URL at INFO (the CLI silences it; a debugging session may not):
    a robot key must not reach any log even then."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(WECOM_HOST in str(arg) for arg in record.args):
            record.args = tuple(redact(str(arg)) if WECOM_HOST in str(arg) else arg for arg in record.args)
        return True


_REDACT_FILTER = _RedactRobotKeys()
logging.getLogger("httpx").addFilter(_REDACT_FILTER)


def robot_id(robot_key: str) -> str:
    """How logs and Redis name a robot: a hash of its key (the key itself is the secret)."""
    return hashlib.sha256(f"wecom-robot:{robot_key}".encode()).hexdigest()[:16]


# ── sending ───────────────────────────────────────────────────────────────────────────────────────

ERRCODE_OK = 0
ERRCODE_FREQ_OUT_OF_LIMIT = 45009  # "api freq out of limit": more than 20 messages a minute
ERRCODE_SYSTEM_BUSY = -1
RATE_LIMIT_RETRY_S = 60
# The webhook no longer leads to a group: invalid or reset URL, robot removed or disabled. Every 930xx
# code is about the webhook itself, so unknown ones in that range count as gone too.
GONE_ERRCODES = frozenset({93000, 93004, 93008})
TRANSIENT_RETRY_S = 30


class WeComResult(msgspec.Struct, frozen=True):
    ok: bool
    errcode: int | None  # WeCom's; None when no WeCom answer was read (network, HTTP status, bad body)
    errmsg: str  # WeCom's text, or what went wrong on the way; never the URL
    retryable: bool
    retry_after_s: int | None  # set when retryable

    @property
    def gone(self) -> bool:
        """The robot cannot be reached any more: forget the webhook, tell the area's supervisors."""
        return self.errcode is not None and (self.errcode in GONE_ERRCODES or 93000 <= self.errcode < 94000)


def result_of(status: int, body: bytes, retry_after: str | None = None) -> WeComResult:
    """What one HTTP answer from WeCom means for this message."""
    if status == 429 or status >= 500:
        wait = int(retry_after) if retry_after and retry_after.isdigit() else (
            RATE_LIMIT_RETRY_S if status == 429 else TRANSIENT_RETRY_S)
        return WeComResult(False, None, f"HTTP {status}", True, max(1, wait))
    if status != 200:  # a redirect (never followed) or a refusal: not a robot that will take this message
        return WeComResult(False, None, f"HTTP {status}", False, None)
    try:
        reply = msgspec.json.decode(body)
        errcode, errmsg = reply["errcode"], str(reply.get("errmsg", ""))[:200]
        if not isinstance(errcode, int) or isinstance(errcode, bool):
            raise TypeError("errcode")
    except (msgspec.DecodeError, KeyError, TypeError, AttributeError):
        # A 200 that is not WeCom's JSON (a proxy's page): try again later rather than lose the card.
        return WeComResult(False, None, "unreadable reply", True, TRANSIENT_RETRY_S)
    if errcode == ERRCODE_OK:
        return WeComResult(True, 0, errmsg, False, None)
    if errcode == ERRCODE_FREQ_OUT_OF_LIMIT:
        return WeComResult(False, errcode, errmsg, True, RATE_LIMIT_RETRY_S)
    if errcode == ERRCODE_SYSTEM_BUSY:
        return WeComResult(False, errcode, errmsg, True, TRANSIENT_RETRY_S)
    # 930xx: the webhook is gone; 400xx/440xx: the message is wrong and would be refused again.
    return WeComResult(False, errcode, errmsg, False, None)


def markdown_body(content: str) -> bytes:
    return msgspec.json.encode({"msgtype": "markdown", "markdown": {"content": fit_bytes(content)}})


def fit_bytes(text: str, limit: int = MAX_CONTENT_BYTES) -> str:
    """`text` if it is at most `limit` UTF-8 bytes, else cut at a character boundary and ended with "…"."""
    data = text.encode()
    if len(data) <= limit:
        return text
    cut = data[: limit - len(ELLIPSIS.encode())].decode("utf-8", errors="ignore")
    return cut + ELLIPSIS


class WeComRobot:
    """Posts markdown to group robots through `network` (production: the public Internet only).

    One client (connection pool) per instance; close it with `aclose()` or use `async with`.
    """

    def __init__(self, network: PushNetwork = PUBLIC_INTERNET, *, timeout_s: float = 10.0) -> None:
        self._network = network
        self._timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> WeComRobot:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def send_markdown(self, webhook_url: str, content: str) -> WeComResult:
        # Checked again here: whatever a caller passes, only WeCom's own host and path are ever posted to.
        try:
            webhook = check_webhook_url(webhook_url)
        except WeComWebhookInvalid as exc:
            return WeComResult(False, None, f"not a WeCom webhook ({exc.reason})", False, None)
        robot = robot_id(webhook.key)
        if self._client is None:
            self._client = vetted_client(self._network, timeout_s=self._timeout_s)
        try:
            response = await self._client.post(webhook.url, content=markdown_body(content),
                                               headers={"content-type": "application/json"})
        except AddressRefused as exc:
            # The name resolved to nothing or to an inward address (DNS trouble or tampering): try later.
            log.warning("wecom.address_refused", robot=robot, detail=str(exc)[:200])
            return WeComResult(False, None, "address refused", True, TRANSIENT_RETRY_S)
        # vetted_client's transport lets httpcore's own exceptions through (httpx maps only its own transports').
        except (httpx.TimeoutException, httpcore.TimeoutException) as exc:
            log.info("wecom.timeout", robot=robot, error=type(exc).__name__)
            return WeComResult(False, None, "timeout", True, TRANSIENT_RETRY_S)
        except (httpx.TransportError, httpcore.NetworkError, httpcore.ProtocolError,
                httpcore.UnsupportedProtocol) as exc:
            # Exception texts may carry the request URL; only the type is logged.
            log.info("wecom.network_error", robot=robot, error=type(exc).__name__)
            return WeComResult(False, None, "network error", True, TRANSIENT_RETRY_S)
        result = result_of(response.status_code, response.content, response.headers.get("retry-after"))
        if not result.ok:
            log.info("wecom.refused", robot=robot, status=response.status_code, errcode=result.errcode,
                     errmsg=_scrub(result.errmsg, webhook.key), retryable=result.retryable, gone=result.gone)
        return result


def _scrub(text: str, key: str) -> str:
    return text.replace(key, "<key>")


# ── 20 messages a minute per robot, across processes ─────────────────────────────────────────────

ROBOT_LIMIT = 20
ROBOT_WINDOW_S = 60
_EXPIRY_SLACK_MS = 1000

# An exact sliding log (the times of the last ≤20 messages) rather than api/ratelimit.py's weighted
# two-window counter: that estimate may admit a few more than 20 in a true 60 s window when the
# previous window's messages came late, and WeCom would refuse those with 45009. Twenty timestamps
# per robot cost nothing.
# KEYS[1]: the robot's sorted set (member = unique id, score = ms). ARGV: now_ms, window_ms, limit, member.
# Returns {allowed 0|1, ms until a message would be allowed}.
_SLIDING_LOG_LUA = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window + 1000)
  return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now}
"""


class RobotDecision(msgspec.Struct, frozen=True):
    allowed: bool
    retry_after_s: int  # 0 when allowed


class RobotRateLimiter:
    """WeCom's 20 messages per minute per robot, counted in Redis so every process shares one budget.

    Fails open like api/ratelimit.py: with Redis away a message is sent, and WeCom's own 45009 (a
    retryable result) is the backstop.
    """

    def __init__(self, redis: Redis | None, clock: Clock, *, limit: int = ROBOT_LIMIT,
                 window_s: int = ROBOT_WINDOW_S, prefix: str = "gridrider:wecom", timeout_s: float = 0.25) -> None:
        self._redis = redis
        self._clock = clock
        self._limit = limit
        self._window_ms = window_s * 1000
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._script = redis.register_script(_SLIDING_LOG_LUA) if redis is not None else None
        self._failing = False

    def key(self, robot_key: str) -> str:
        return f"{self._prefix}:robot:{robot_id(robot_key)}"

    async def take(self, robot_key: str) -> bool:
        """Count one message for this robot (its key, `CheckedWebhook.key`) if its minute has room."""
        return (await self.acquire(robot_key)).allowed

    async def acquire(self, robot_key: str) -> RobotDecision:
        if self._script is None:
            return RobotDecision(True, 0)
        now_ms = math.floor(self._clock.now().timestamp() * 1000)
        member = f"{now_ms}:{secrets.token_hex(6)}"
        try:
            async with asyncio.timeout(self._timeout_s):
                allowed, wait_ms = await self._script(keys=[self.key(robot_key)],
                                                      args=[now_ms, self._window_ms, self._limit, member])
        except REDIS_TROUBLE as exc:
            if not self._failing:
                self._failing = True
                log.warning("wecom.ratelimit_redis_unavailable", error=type(exc).__name__)
            return RobotDecision(True, 0)
        if self._failing:
            self._failing = False
            log.info("wecom.ratelimit_redis_recovered")
        return RobotDecision(bool(allowed), 0 if allowed else max(1, math.ceil(int(wait_ms) / 1000)))


# ── cards ─────────────────────────────────────────────────────────────────────────────────────────

class CardItem(msgspec.Struct, frozen=True):
    """What a card shows of one incident (a NotificationContext has all of it)."""

    incident_id: int
    category: str  # zh-CN name
    place: str = ""  # zh-CN
    life_safety: bool = False
    report_count: int = 1
    accept_due_at: dt.datetime | None = None
    reason: str = "created"  # created | dispatched | transferred | reopened | appeal_upheld

    @classmethod
    def of(cls, context: NotificationContext) -> CardItem:
        assert context.incident_id is not None
        return cls(incident_id=context.incident_id, category=context.category_zh or context.category or "隐患",
                   place=context.place_zh or "", life_safety=bool(context.life_safety),
                   report_count=context.report_count or 1, accept_due_at=context.accept_due_at,
                   reason=str((context.payload or {}).get("reason", "created")))


_REASON_ZH = {"created": "新隐患", "dispatched": "已派发", "transferred": "转派", "reopened": "重新打开",
              "appeal_upheld": "申诉成立"}
# Characters WeCom markdown reads as markup, in their full-width twins: user text stays text.
_MARKUP = str.maketrans({"<": "＜", ">": "＞", "[": "［", "]": "］", "(": "（", ")": "）", "*": "＊", "`": "｀",
                         "#": "＃", "_": "＿", "\r": " ", "\n": " ", "\t": " "})


def plain(text: str, limit: int = 60) -> str:
    """User or admin text made inert in WeCom markdown, one line, at most `limit` characters."""
    flat = " ".join(text.translate(_MARKUP).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + ELLIPSIS


def incident_link(public_url: str, incident_id: int) -> str:
    return f"{public_url.rstrip('/')}/#/incidents/{int(incident_id)}"


def time_left(due: dt.datetime | None, now: dt.datetime) -> tuple[str, bool]:
    """('剩余 1 小时 20 分' | '已超时 5 分钟' | '', overdue)."""
    if due is None:
        return "", False
    seconds = (due - now).total_seconds()
    minutes = math.ceil(abs(seconds) / 60)
    hours, mins = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days} 天" if days else "", f"{hours} 小时" if hours else "",
             f"{mins} 分钟" if mins and not days else ""]
    span = " ".join(p for p in parts if p) or "不到 1 分钟"
    return (f"已超时 {span}", True) if seconds < 0 else (f"剩余 {span}", False)


def _title(item: CardItem, limit: int = 60) -> str:
    category = plain(item.category, 20)
    return f"{category} · {plain(item.place, limit)}" if item.place.strip() else category


def incident_card(item: CardItem, *, public_url: str, now: dt.datetime) -> str:
    """One incident as a WeCom markdown card: category · place, time left to accept, reports, a link."""
    flag = '<font color="warning">【危及生命安全】</font>' if item.life_safety else ""
    reason = _REASON_ZH.get(item.reason, "新隐患")
    lines = [f"### {flag}{_title(item)}", f'> <font color="comment">{reason}</font>']
    due = item.accept_due_at
    if due is not None:
        left, overdue = time_left(due, now)
        color = "warning" if overdue or item.life_safety else "info"
        lines.append(f'> 受理时限：<font color="{color}">{left}</font>（{format_local(due)} 前）')
    lines.append(f"> 上报人数：{max(1, item.report_count)} 人")
    lines.append(f"[查看详情并受理]({incident_link(public_url, item.incident_id)})")
    return fit_bytes("\n".join(lines))


def batch_card(items: Sequence[CardItem], *, public_url: str, now: dt.datetime) -> str:
    """Several incidents in one message (the robot's minute budget was spent): life-safety first, then the
    most urgent; as many lines as fit in WeCom's 4096 bytes, and how many more are in the app."""
    ordered = sorted(items, key=lambda i: (not i.life_safety, i.accept_due_at is None,
                                           i.accept_due_at or now, i.incident_id))
    urgent = sum(1 for i in ordered if i.life_safety)
    head = f"### 新隐患 {len(ordered)} 条待受理"
    if urgent:
        head += f'（<font color="warning">其中 {urgent} 条危及生命安全</font>）'
    lines = [head]
    for index, item in enumerate(ordered):
        flag = '<font color="warning">【危及生命安全】</font>' if item.life_safety else ""
        left, overdue = time_left(item.accept_due_at, now)
        details = " · ".join(x for x in (
            f'<font color="warning">{left}</font>' if left and (overdue or item.life_safety) else left,
            f"{max(1, item.report_count)} 人上报") if x)
        line = f"- {flag}[{_title(item, 30)}]({incident_link(public_url, item.incident_id)}) {details}"
        after = len(ordered) - index - 1
        # Room for this line and, if any follow, for the line that says how many did not fit.
        if len("\n".join([*lines, line, *([_more(after, public_url)] if after else [])]).encode()) > MAX_CONTENT_BYTES:
            lines.append(_more(after + 1, public_url))
            break
        lines.append(line)
    return "\n".join(lines)


def _more(count: int, public_url: str) -> str:
    return f"> 另有 {count} 条未列出，请在应用中查看：[全部隐患]({public_url.rstrip('/')}/#/incidents)"
