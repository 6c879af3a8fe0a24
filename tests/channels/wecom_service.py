"""A local stand-in for WeCom's group-robot webhook API (qyapi.weixin.qq.com), answering like the real one.

HTTPS on 127.0.0.1 with a certificate for `qyapi.weixin.qq.com` from a CA made at start; the product
reaches it only through a `PushNetwork` the test passes in (tests/push/conftest.py `loopback_network`).

POST /cgi-bin/webhook/send?key=<key>, JSON `{"msgtype": "markdown", "markdown": {"content": "…"}}`.
Like WeCom, every answer is HTTP 200 with `{"errcode", "errmsg"}`:

- unknown key → 93000 invalid webhook url
- body not JSON, or not an object → 40035 invalid parameter (WeCom's "invalid Request Parameter")
- msgtype missing or not one WeCom knows → 40008 invalid message type
- markdown.content missing / not a string → 40035; empty → 44004 empty content; over 4096 bytes → 40058
- a 21st accepted message within 60 s for one key → 45009 api freq out of limit

Per-key behaviours for failure paths: "ok", "error500" (HTTP 500), "slow" (never answers), "redirect"
(HTTP 302 to a loopback URL that must not be followed).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11

from tests.tls_stand_in import TlsStandIn

HOST_NAME = "qyapi.weixin.qq.com"
PATH = "/cgi-bin/webhook/send"
LIMIT_PER_MINUTE = 20
MAX_CONTENT_BYTES = 4096
MSGTYPES = frozenset({"text", "markdown", "markdown_v2", "image", "news", "file", "voice", "template_card"})
BEHAVIOURS = frozenset({"ok", "error500", "slow", "redirect"})
READ_LIMIT = 1024 * 1024


@dataclass
class Message:
    key: str
    body: dict[str, Any]
    content: str
    headers: dict[str, str]
    arrived_at: float = field(default_factory=time.monotonic)


@dataclass
class Answer:
    key: str | None
    errcode: int | None  # None: not a WeCom JSON answer (HTTP error, redirect)
    errmsg: str
    status: int = 200


class WeComService(TlsStandIn):
    """qyapi.weixin.qq.com's robot webhook, on 127.0.0.1 over TLS."""

    read_limit = READ_LIMIT

    def __init__(self, host_name: str = HOST_NAME, *, now: Callable[[], float] = time.monotonic) -> None:
        super().__init__(host_name)
        self.now = now  # the clock the 20-a-minute limit counts by (a test may move it)
        self.connections = 0
        self.answers: list[Answer] = []
        self._robots: dict[str, str] = {}  # key → behaviour
        self._messages: dict[str, list[Message]] = {}
        self._recent: dict[str, deque[float]] = {}

    # -- robots ---------------------------------------------------------------------------------------

    def new_robot(self, behaviour: str = "ok") -> str:
        """A robot added to a group: its webhook URL, as WeCom shows it to the group's owner."""
        key = str(uuid.uuid4())
        self.set_behaviour(key, behaviour)
        return f"https://{self.host_name}{PATH}?key={key}"

    def set_behaviour(self, key_or_url: str, behaviour: str) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}; known: {sorted(BEHAVIOURS)}")
        self._robots[self.key_of(key_or_url)] = behaviour

    def remove_robot(self, key_or_url: str) -> None:
        """The robot was removed from its group: its webhook answers 93000 from now on."""
        self._robots.pop(self.key_of(key_or_url), None)

    def messages_for(self, key_or_url: str) -> list[Message]:
        return list(self._messages.get(self.key_of(key_or_url), []))

    @staticmethod
    def key_of(key_or_url: str) -> str:
        if "://" not in key_or_url:
            return key_or_url
        return parse_qs(urlsplit(key_or_url).query).get("key", [""])[0]

    # -- HTTP -----------------------------------------------------------------------------------------

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await super()._on_connection(reader, writer)

    async def handle(self, request: h11.Request, body: bytes) -> tuple[int, list[tuple[str, str]], bytes] | None:
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in request.headers}
        target = urlsplit(request.target.decode("latin-1"))
        if request.method != b"POST" or target.path != PATH:
            return self._http(None, 404)
        keys = parse_qs(target.query, keep_blank_values=True).get("key", [])
        key = keys[0] if len(keys) == 1 else None
        behaviour = self._robots.get(key or "")
        if key is None or behaviour is None:
            return self._wecom(key, 93000, "invalid webhook url, hint: [local stand-in]")
        if behaviour == "slow":  # hold the request until the client gives up
            return None
        if behaviour == "error500":
            return self._http(key, 500)
        if behaviour == "redirect":
            return self._http(key, 302, [("location", f"https://127.0.0.1:{self.port}{PATH}?key={key}")])
        try:
            message = json.loads(body)
        except ValueError:
            return self._wecom(key, 40035, "invalid Request Parameter, body is not json")
        if not isinstance(message, dict):
            return self._wecom(key, 40035, "invalid Request Parameter")
        msgtype = message.get("msgtype")
        if msgtype not in MSGTYPES:
            return self._wecom(key, 40008, "invalid message type")
        if msgtype != "markdown":  # the stand-in checks only what our robot sends
            return self._wecom(key, 40035, f"invalid Request Parameter, {msgtype} not supported by the stand-in")
        markdown = message.get("markdown")
        content = markdown.get("content") if isinstance(markdown, dict) else None
        if not isinstance(content, str):
            return self._wecom(key, 40035, "invalid Request Parameter, markdown.content missing")
        if not content.strip():
            return self._wecom(key, 44004, "empty content")
        if len(content.encode()) > MAX_CONTENT_BYTES:
            return self._wecom(key, 40058, "markdown.content exceed max length 4096")
        recent = self._recent.setdefault(key, deque())
        now = self.now()
        while recent and recent[0] <= now - 60:
            recent.popleft()
        if len(recent) >= LIMIT_PER_MINUTE:
            return self._wecom(key, 45009, "api freq out of limit")
        recent.append(now)
        self._messages.setdefault(key, []).append(Message(key, message, content, headers))
        return self._wecom(key, 0, "ok")

    def _wecom(self, key: str | None, errcode: int, errmsg: str) -> tuple[int, list[tuple[str, str]], bytes]:
        self.answers.append(Answer(key, errcode, errmsg))
        payload = json.dumps({"errcode": errcode, "errmsg": errmsg}).encode()
        return 200, [("content-type", "application/json; charset=UTF-8")], payload

    def _http(self, key: str | None, status: int,
              headers: list[tuple[str, str]] | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
        self.answers.append(Answer(key, None, f"HTTP {status}", status))
        return status, headers or [], b""
