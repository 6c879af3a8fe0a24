"""The push lanes' own HTTP/1.1 codec (push/http1.py): what it sends, and every kind of answer it meets.

First the codec alone, then on the wire: a TLS stand-in that parses our requests with h11 (an
independent reader of what we send) and answers with scripted raw bytes, so each test can see what
the sender reports and whether the next message reuses the connection or opens a new one.
"""

from __future__ import annotations

import asyncio
import os
import random

import h11
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gridrider.embedded import generate_vapid_private_key_pem
from gridrider.push import http1
from gridrider.push.endpoints import b64url
from gridrider.push.sender import PushSender, PushTarget, SubscriptionKeys
from gridrider.push.vapid import VapidKeyring
from tests.push.conftest import loopback_network
from tests.tls_stand_in import TlsStandIn

CREATED = b"HTTP/1.1 201 Created\r\nLocation: https://push.wire.test/m/1\r\nContent-Length: 0\r\n\r\n"


def read_all(*chunks: bytes) -> list[http1.Answer | None]:
    reader = http1.AnswerReader()
    return [reader.feed(chunk) for chunk in chunks]


# ── the codec alone ────────────────────────────────────────────────────────────────────────────────


def test_a_request_is_written_as_h11_reads_it():
    wire = http1.encode_request(b"/push/a%20b", [(b"Host", b"push.example"), (b"TTL", b"60"),
                                                 (b"Content-Length", b"3")], b"abc")
    server = h11.Connection(h11.SERVER)
    server.receive_data(wire)
    request, data, end = server.next_event(), server.next_event(), server.next_event()
    assert (request.method, request.target) == (b"POST", b"/push/a%20b")
    assert dict(request.headers) == {b"host": b"push.example", b"ttl": b"60", b"content-length": b"3"}
    assert (data.data, type(end)) == (b"abc", h11.EndOfMessage)


@pytest.mark.parametrize(("target", "headers"), [
    (b"/push/x HTTP/1.1\r\nHost: evil", [(b"Host", b"a")]),  # a target that would split the request line
    (b"http://push.example/x", [(b"Host", b"a")]),  # absolute form: lanes only speak origin form
    (b"/push/x", [(b"Topic", b"a\r\nX-Injected: 1")]),  # a value that would add a header
    (b"/push/x", [(b"Topic", b"a\nb")]),
    (b"/push/x", [(b"Topic", b"a\x00b")]),
    (b"/push/x", [(b"Bad Name", b"1")]),
    (b"/push/x", [(b"Topic", b" padded")]),
])
def test_nothing_that_could_split_a_request_is_written(target, headers):
    with pytest.raises(ValueError, match=r"origin-form|cannot be sent"):
        http1.encode_request(target, headers, b"")


def test_an_answer_arriving_a_byte_at_a_time_is_read_once_whole():
    answer = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nContent-Length: 5\r\n\r\nslow!"
    results = read_all(*(answer[i:i + 1] for i in range(len(answer))))
    assert results[:-1] == [None] * (len(answer) - 1)
    assert results[-1] == http1.Answer(429, [(b"Retry-After", b"3"), (b"Content-Length", b"5")], b"slow!", True)


def test_two_answers_on_one_connection_are_read_one_after_the_other():
    reader = http1.AnswerReader()
    assert reader.feed(CREATED).status == 201 and reader.idle
    assert reader.feed(b"HTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n").status == 410


@pytest.mark.parametrize(("answer", "status"), [
    (b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 201),
    (b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 201),
    (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nread until the connection closes", 400),
    (b"HTTP/1.1 201 Created\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n", 201),
    (b"HTTP/1.0 201 Created\r\nContent-Length: 0\r\n\r\n", 201),
    (CREATED + b"HTTP/1.1 200 OK\r\n\r\n", 201),  # a second answer nobody asked for
    (b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n" % (http1.MAX_BODY_BYTES + 1), 500),
])
def test_an_answer_not_framed_for_reuse_gives_its_status_and_ends_the_connection(answer, status):
    result = read_all(answer)[-1]
    assert result is not None and (result.status, result.keep_alive) == (status, False)


def test_interim_answers_are_skipped_for_the_final_one():
    result = read_all(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + CREATED)[-1]
    assert (result.status, result.keep_alive) == (201, True)


def test_repeated_equal_content_lengths_are_one_length():
    result = read_all(b"HTTP/1.1 201 Created\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok")[-1]
    assert (result.body, result.keep_alive) == (b"ok", True)


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 2O1 Created\r\n\r\n",
    b"HTTP/2 201\r\n\r\n",
    b"ICY 200 OK\r\n\r\n",
    b"HTTP/1.1 600 Beyond\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
    b"HTTP/1.1 201 Created\r\n folded: line\r\n\r\n",
    b"HTTP/1.1 201 Created\r\nNo-Colon\r\n\r\n",
    b"HTTP/1.1 201 Created\r\nBad Name: 1\r\n\r\n",
    b"HTTP/1.1 201 Created\r\nX: a\x00b\r\n\r\n",
    b"HTTP/1.1 201 Created\r\nX: a\nInjected: 1\r\n\r\n",
    b"HTTP/1.1 201 Created\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 201 Created\r\nContent-Length: 0x10\r\n\r\n",
    b"HTTP/1.1 201 Created\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"HTTP/1.1 201 Created\r\n" + b"X: 1\r\n" * (http1.MAX_HEADER_FIELDS + 1) + b"\r\n",
    b"HTTP/1.1 201 Created\r\nX: " + b"a" * http1.MAX_HEAD_BYTES,  # a head that never ends
])
def test_a_malformed_answer_is_refused(answer):
    with pytest.raises(http1.AnswerError):
        read_all(answer)


def test_the_reader_is_idle_only_between_answers():
    """What the lane asks when a connection ends: mid-answer is an error, between answers is not."""
    reader = http1.AnswerReader()
    assert reader.idle and reader.feed(CREATED) is not None and reader.idle
    assert reader.feed(b"HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\nabc") is None
    assert not reader.idle
    assert http1.AnswerReader().feed(b"HTTP/1.1 20") is None


def _random_answer(rng: random.Random) -> bytes:
    """An answer built from the parts the reader decides on, each often wrong."""
    lines = [rng.choice([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2", b"http/1.1", b"HTTP/1.1 "]) + b" "
             + rng.choice([b"201", b"2O1", b"999", b"1", b"429", b"103", b"101", b"204", b""])
             + rng.choice([b" Created", b"", b" ", b" \x00", b" \xe5\x8f\x91"])]
    for _ in range(rng.randint(0, 5)):
        name = rng.choice([b"Content-Length", b"content-length", b"Transfer-Encoding", b"Connection", b"Retry-After",
                           b"X", b"Bad Name", b"", b" Folded"])
        alphabet = rng.choice([b"0123456789-+, ", b"0123456789-+, \t\x00\r\nabcloseuhkd\x7f\xff"])
        value = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        lines.append(name + rng.choice([b": ", b":", b" : ", b""]) + value)
    return b"\r\n".join(lines) + b"\r\n\r\n" + b"x" * rng.randint(0, 20)


def _mangled(rng: random.Random) -> bytes:
    """A well-formed answer with a few bytes inserted, removed or replaced."""
    data = bytearray(rng.choice([
        CREATED, b"HTTP/1.1 429 Slow\r\nRetry-After: 3\r\nContent-Length: 4\r\n\r\nwait",
        b"HTTP/1.1 103 Early\r\n\r\nHTTP/1.1 201 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"]))
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(data) + 1)
        match rng.randrange(3):
            case 0:
                data[at:at] = bytes(rng.choice(b"\r\n :,0123456789-\x00\xff\t") for _ in range(rng.randint(1, 6)))
            case 1:
                del data[at:at + rng.randint(1, 6)]
            case _:
                data[at:at + 1] = bytes([rng.randrange(256)])
    return bytes(data)


def test_any_answer_is_read_or_refused_and_never_raises_anything_else():
    """Whatever a push service (or anything between) sends, the lane gets an answer, None or AnswerError:
    any other exception would escape the protocol callback and leave the send waiting for its timeout."""
    rng = random.Random(20261127)
    outcomes = {"answer": 0, "incomplete": 0, "refused": 0}
    for n in range(20_000):
        data = _random_answer(rng) if n % 2 else _mangled(rng)
        reader, cut = http1.AnswerReader(), rng.randrange(len(data) + 1)
        try:
            answer = reader.feed(data[:cut]) or reader.feed(data[cut:])
        except http1.AnswerError:
            outcomes["refused"] += 1
            continue
        outcomes["answer" if answer is not None else "incomplete"] += 1
    assert all(outcomes.values()), outcomes  # the inputs reached every kind of outcome


# ── on the wire, through the push sender ───────────────────────────────────────────────────────────

CLOSE = b""  # in a script: close the connection instead of answering


def then_close(answer: bytes) -> tuple[bytes]:
    """In a script: write these bytes, then close the connection."""
    return (answer,)


class ScriptedPushService(TlsStandIn):
    """Parses each request with h11 and answers with the next scripted bytes, counting connections."""

    def __init__(self) -> None:
        super().__init__("push.wire.test")
        self.script: list[bytes | tuple[bytes]] = []
        self.connections = 0
        self.bodies: list[bytes] = []

    async def handle(self, request, body):  # pragma: no cover - _serve answers from the script instead
        raise NotImplementedError

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        while True:
            request, body = await self._read_request(h11.Connection(h11.SERVER), reader)
            if request is None:
                return
            self.requests += 1
            self.bodies.append(body)
            answer = self.script.pop(0)
            writer.write(answer[0] if isinstance(answer, tuple) else answer)
            await writer.drain()
            if answer == CLOSE or isinstance(answer, tuple):
                return


@pytest.fixture
async def wire():
    service = ScriptedPushService()
    await service.start()
    keyring = VapidKeyring.from_text(generate_vapid_private_key_pem(), "mailto:ops@gridrider.test")
    sender = PushSender(keyring, loopback_network(service), timeout_s=2.0, lanes_per_origin=1)
    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    keys = SubscriptionKeys(b64url(point), b64url(os.urandom(16)))
    target = PushTarget(1, f"https://{service.host_name}/push/abc", keys, keyring.current.id)

    async def send():
        return await sender.send(target, keyring.current, b'{"title":"t"}', ttl_s=60, urgency="normal",
                                 topic="incident-1")

    try:
        yield service, send
    finally:
        await sender.aclose()
        await service.stop()


async def test_answers_framed_by_content_length_keep_one_connection(wire):
    service, send = wire
    service.script = [CREATED, b"HTTP/1.1 429 Slow Down\r\nRetry-After: 7\r\nContent-Length: 4\r\n\r\nwait", CREATED]
    replies = [await send() for _ in range(3)]
    assert [(r.status, r.retry_after_s) for r in replies] == [(201, None), (429, 7.0), (201, None)]
    assert service.connections == 1 and all(len(body) > 100 for body in service.bodies)  # encrypted payloads


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    CREATED + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",  # bytes nobody asked for
])
async def test_an_answer_that_cannot_be_reused_still_counts_and_the_next_goes_on_a_new_connection(wire, answer):
    service, send = wire
    service.script = [answer, CREATED]
    first, second = await send(), await send()
    assert (first.status, second.status) == (201, 201)
    assert service.connections == 2


async def test_a_garbled_answer_is_a_failed_send_and_the_connection_is_not_reused(wire):
    service, send = wire
    service.script = [b"HTTP/1.1 201 Created\r\nX: a\x00b\r\nContent-Length: 0\r\n\r\n", CREATED]
    garbled, next_one = await send(), await send()
    assert garbled.status is None and "RemoteProtocolError" in garbled.error
    assert next_one.status == 201 and service.connections == 2


async def test_a_connection_closed_mid_answer_is_a_failed_send(wire):
    service, send = wire
    service.script = [then_close(b"HTTP/1.1 201 Created\r\nContent-Length: 50\r\n\r\npartial"), CREATED]
    cut_short, next_one = await send(), await send()
    assert cut_short.status is None and "in the middle of an answer" in cut_short.error
    assert next_one.status == 201 and service.connections == 2


async def test_an_answer_that_stops_short_times_out(wire):
    service, send = wire
    service.script = [b"HTTP/1.1 201 Created\r\nContent-Length: 50\r\n\r\npartial"]
    reply = await send()  # 7 of the 50 bytes, then nothing: the send's timeout ends it
    assert reply.status is None and reply.error == "timeout"


async def test_a_new_connection_closed_without_an_answer_is_a_failed_send_not_a_retry_loop(wire):
    service, send = wire
    service.script = [CLOSE]
    reply = await send()
    assert reply.status is None and "closed before a response" in reply.error
    assert service.requests == 1
