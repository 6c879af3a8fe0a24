"""The HTTP/1.1 wire format of one push request and its answer, for the push sender's lanes only.

Why not h11 here: a push message's HTTP exchange through h11 cost ~80 µs of CPU in a fan-out — as
much as its ECDH encryption, and what kept one worker under 3,000 messages a second (`gridrider
bench push`). This codec does only what a lane needs, and refuses everything else:

- requests: our own `POST`, whose target and headers httpx has already normalised; each is checked
  again here, so nothing a subscription carries can split a header or a request;
- answers: a status line and header fields, strictly (CRLF line ends, no folded lines, token
  names, no control characters, bounded size and count), framed by Content-Length (one value, or
  equal repeats). Any other framing — chunked, or a body that runs to the end of the connection — or
  a body over 64 KiB ends the exchange at the header, and the connection is closed rather than
  reused: the sender needs only the status and headers, so it never parses such a body at all.
  A byte beyond the answer, or an answer nobody asked for, makes the connection untrusted (closed).

Everything else about the exchange — TLS, the vetted address, timeouts, reuse — is the lane's
(push/sender.py); the request and response are httpx's objects.
"""

from __future__ import annotations

import dataclasses
import re

MAX_HEAD_BYTES = 16 * 1024  # push services answer with a few hundred bytes of head
MAX_HEADER_FIELDS = 100
MAX_BODY_BYTES = 64 * 1024  # bodies are read (to reuse the connection) only up to this size

_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([1-5][0-9][0-9])(?: [\t\x20-\x7e\x80-\xff]*)?")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_REQUEST_TARGET = re.compile(rb"/[\x21-\x7e]*")
_DIGITS = re.compile(rb"[0-9]{1,18}")


class AnswerError(Exception):
    """The push service's answer is not well-formed HTTP/1.1 (the connection must not be reused)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]  # names as sent, values without surrounding whitespace
    body: bytes  # b"" when the body was not read (then keep_alive is False)
    keep_alive: bool  # the connection may carry the next request


def encode_request(target: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    """`POST target` with these header fields and body; ValueError on anything that could split it."""
    if not _REQUEST_TARGET.fullmatch(target):
        raise ValueError(f"request target {target[:80]!r} is not an origin-form path")
    lines = [b"POST ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        if not _TOKEN.fullmatch(name) or not _FIELD_VALUE.fullmatch(value) or value.strip(b" \t") != value:
            raise ValueError(f"header field {name[:40]!r} cannot be sent as it is")
        lines += (name, b": ", value, b"\r\n")
    lines += (b"\r\n", body)
    return b"".join(lines)


class AnswerReader:
    """Reads one answer at a time from the bytes of one connection.

    `feed` returns the Answer once its head (and, if it is to be read, its body) is complete, else
    None, and raises AnswerError for anything malformed. `idle` says no answer is half-read: a
    connection that ends while it is False ended mid-answer (the lane's connection_lost asks).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._head: tuple[int, list[tuple[bytes, bytes]], bool] | None = None
        self._body_length = 0

    def feed(self, data: bytes) -> Answer | None:
        self._buffer += data
        while self._head is None:
            end = self._buffer.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES + 4)
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:
                    raise AnswerError("answer head too large")
                return None
            status, headers, keep_alive = _parse_head(bytes(self._buffer[:end]))
            del self._buffer[:end + 4]
            if status < 200:
                if status == 101:
                    raise AnswerError("switching protocols was never asked for")
                continue  # an interim answer (103 Early Hints, say): the final one follows
            framing = _body_length(status, headers)
            if framing is None or framing > MAX_BODY_BYTES:
                # Chunked, read-to-close or oversized: status and headers are all a push answer is for.
                return Answer(status, headers, b"", keep_alive=False)
            self._head, self._body_length = (status, headers, keep_alive), framing
        if len(self._buffer) < self._body_length:
            return None
        status, headers, keep_alive = self._head
        body = bytes(self._buffer[:self._body_length])
        unasked = len(self._buffer) > self._body_length  # bytes past the answer: not trusted again
        self._buffer.clear()
        self._head = None
        return Answer(status, headers, body, keep_alive=keep_alive and not unasked)

    @property
    def idle(self) -> bool:
        """No part of an answer has arrived since the last one."""
        return self._head is None and not self._buffer


def _parse_head(head: bytes) -> tuple[int, list[tuple[bytes, bytes]], bool]:
    lines = head.split(b"\r\n")
    status_line = _STATUS_LINE.fullmatch(lines[0])
    if status_line is None:
        raise AnswerError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    if len(lines) - 1 > MAX_HEADER_FIELDS:
        raise AnswerError("too many header fields")
    headers: list[tuple[bytes, bytes]] = []
    close = status_line.group(1) == b"0"  # an HTTP/1.0 answer: its connection is not reused
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise AnswerError(f"malformed header field line {line[:80]!r}")  # folded lines included
        value = value.strip(b" \t")
        if not _FIELD_VALUE.fullmatch(value):
            raise AnswerError(f"control character in header field {name[:40]!r}")
        headers.append((name, value))
        if name.lower() == b"connection" and b"close" in (t.strip() for t in value.lower().split(b",")):
            close = True
    return int(status_line.group(2)), headers, not close


def _body_length(status: int, headers: list[tuple[bytes, bytes]]) -> int | None:
    """The body's length by RFC 9112 §6.3, or None when it is not framed by Content-Length."""
    if status in (204, 304):
        return 0
    lengths: set[bytes] = set()
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"transfer-encoding":
            return None
        if lowered == b"content-length":
            for item in value.split(b","):
                item = item.strip(b" \t")
                if not _DIGITS.fullmatch(item):
                    raise AnswerError(f"invalid Content-Length {value[:40]!r}")
                lengths.add(item)
    if len(lengths) > 1:
        raise AnswerError("conflicting Content-Length values")
    return int(lengths.pop()) if lengths else None
