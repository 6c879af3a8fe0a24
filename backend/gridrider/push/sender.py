"""Send one encrypted Web Push message and report what the push service answered.

Through httpx: a message is an httpx.Request (httpx sets Host and Content-Length and normalises the
URL and headers) handed to an httpx transport, which returns an httpx.Response. The transport is
ours: each push-service origin gets a set of "lanes", one kept-alive HTTP/1.1 connection each,
handed out from a free list; the connection comes from push/network.py's vetted connector and
speaks push/http1.py's strict codec. A lane that timed out or broke is closed and replaced, so a
hanging push service holds at most its own lanes, never another service's.

What this replaced, and why (`gridrider bench push`, CPU per message): httpx's default httpcore pool
rescans every connection per request (~5× the request's own CPU at 32 connections) and goes through
anyio; asyncio streams cost a future, a drain and two timeouts per exchange; h11 cost ~80 µs per
exchange, as much as the message's encryption.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import ssl
import time

import httpcore
import httpx

from gridrider.push import http1
from gridrider.push.network import AddressRefused, PushNetwork, connect_vetted
from gridrider.push.vapid import VapidKey, VapidKeyring

MAX_PLAINTEXT_BYTES = 3000  # RFC 8291 leaves 3,993; 3,000 keeps every push service (and Apple's) happy


@dataclasses.dataclass(frozen=True)
class SubscriptionKeys:
    p256dh: str  # base64url, as webpush wants it
    auth: str


@dataclasses.dataclass(frozen=True)
class PushTarget:
    """What webpush's encryption reads of a subscription (endpoint, keys.p256dh, keys.auth), and its id."""

    subscription_id: int
    endpoint: str
    keys: SubscriptionKeys
    vapid_key_id: str

    @property
    def origin(self) -> str:
        return self.origin_of(self.endpoint)

    @staticmethod
    def origin_of(endpoint: str) -> str:
        scheme, _, rest = endpoint.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}"


@dataclasses.dataclass(frozen=True)
class PushReply:
    status: int | None  # HTTP status, None when no answer came (timeout, refused, network error)
    error: str | None = None
    retry_after_s: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PushMessage:
    origin: str  # scheme://host[:port]: which lanes carry it
    request: httpx.Request


class _ClosedBeforeAnswer(Exception):
    """The connection ended before any byte of an answer arrived."""


class _LaneConnection(asyncio.Protocol):
    """One TLS connection of a lane; the answer is read straight from the transport's callbacks.

    A protocol rather than asyncio streams: at thousands of messages a second the stream layer's
    per-read futures, drains and timeouts cost more CPU than reading the answer itself.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._reader = http1.AnswerReader()
        self._waiter: asyncio.Future[http1.Answer] | None = None
        self._trusted = True  # until it answers something unasked, badly, or not to be kept alive

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport

    @property
    def reusable(self) -> bool:
        """Open, trusted, and quiet since its last answer (a server that closed it idle has said so)."""
        return self._trusted and self._reader.idle and not self.transport.is_closing()

    async def exchange(self, request: httpx.Request) -> http1.Answer:
        """Send `request` and wait for its answer (the caller's timeout bounds the wait)."""
        assert self._waiter is None and self.transport is not None
        try:  # PushSender.prepare has set Host (the push service's name) and Content-Length
            payload = http1.encode_request(request.url.raw_path, request.headers.raw, request.read())
        except ValueError as exc:  # a header or path that could split the request: a failed send, never a crash
            raise httpcore.LocalProtocolError(str(exc)) from None
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            self.transport.write(payload)
            return await self._waiter
        finally:
            self._waiter = None

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            self._fail(http1.AnswerError("an answer nobody asked for"))  # not trusted again
            return
        try:
            answer = self._reader.feed(data)
        except http1.AnswerError as exc:
            self._fail(exc)
            return
        if answer is not None:
            if not answer.keep_alive:
                self._trusted = False
                self.transport.close()
            waiter.set_result(answer)

    def eof_received(self) -> bool:
        self._trusted = False  # the server is done with it, even before connection_lost arrives
        return False  # close the transport; connection_lost tells a waiting exchange

    def connection_lost(self, exc: Exception | None) -> None:
        self._trusted = False
        if self._waiter is not None and not self._waiter.done():
            if self._reader.idle:
                self._waiter.set_exception(_ClosedBeforeAnswer())
            else:
                self._waiter.set_exception(httpcore.RemoteProtocolError("connection closed in the middle of an answer"))

    def _fail(self, exc: Exception) -> None:
        self._trusted = False
        self.transport.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(httpcore.RemoteProtocolError(str(exc)))


class _Lane(httpx.AsyncBaseTransport):
    """One kept-alive HTTP/1.1 connection to one push service, as an httpx transport.

    A lane carries one request at a time, so it needs none of a pool's locks; its connection comes
    from the vetted connector (push/network.py).
    """

    def __init__(self, network: PushNetwork, ssl_context: ssl.SSLContext) -> None:
        self._network = network
        self._ssl_context = ssl_context
        self._connection: _LaneConnection | None = None

    async def _connect(self, host: str, port: int) -> tuple[_LaneConnection, bool]:
        """The lane's connection, and whether it is a reused one; one the server has closed is replaced."""
        connection = self._connection
        if connection is not None and connection.reusable:
            return connection, True
        await self.aclose()
        loop = asyncio.get_running_loop()
        _, connection = await connect_vetted(
            self._network, host, port,
            lambda ip, ip_port: loop.create_connection(_LaneConnection, ip, ip_port, ssl=self._ssl_context,
                                                       server_hostname=host))
        self._connection = connection
        return connection, False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        try:
            connection, reused = await self._connect(url.host, url.port or 443)
            try:
                answer = await connection.exchange(request)
            except _ClosedBeforeAnswer:
                if not reused:
                    raise httpcore.RemoteProtocolError("connection closed before a response") from None
                # The server had closed this idle keep-alive connection before our request reached it (it
                # answered nothing): the request goes once more, on a new connection.
                connection, _ = await self._connect(url.host, url.port or 443)
                try:
                    answer = await connection.exchange(request)
                except _ClosedBeforeAnswer:
                    raise httpcore.RemoteProtocolError("connection closed before a response") from None
        except BaseException:  # refused, broken, timed out, cancelled: the connection's state is unknown
            await self.aclose()
            raise
        # The body as a stream httpx does not copy again (nothing reads a push service's answer body).
        return httpx.Response(status_code=answer.status, headers=answer.headers, stream=httpx.ByteStream(answer.body))

    async def aclose(self) -> None:
        if self._connection is not None and self._connection.transport is not None:
            self._connection.transport.close()
        self._connection = None


class _Origin:
    def __init__(self, size: int) -> None:
        self.free: asyncio.Queue[_Lane] = asyncio.Queue()
        self.made = 0
        self.size = size


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class PushSender:
    def __init__(self, keyring: VapidKeyring, network: PushNetwork, *, timeout_s: float, lanes_per_origin: int) -> None:
        self.keyring = keyring
        self._network = network
        self._ssl_context = network.make_ssl_context()  # one per sender: making one costs milliseconds
        self._timeout_s = timeout_s
        self._lanes_per_origin = lanes_per_origin
        self._origins: dict[str, _Origin] = {}

    async def _take_lane(self, origin: str) -> _Lane:
        slot = self._origins.get(origin)
        if slot is None:
            slot = self._origins[origin] = _Origin(self._lanes_per_origin)
        if slot.free.empty() and slot.made < slot.size:
            slot.made += 1
            return _Lane(self._network, self._ssl_context)
        return await slot.free.get()

    def prepare(self, target: PushTarget, key: VapidKey, plaintext: bytes, *, ttl_s: int, urgency: str,
                topic: str | None) -> PushMessage:
        """The encrypted, signed request for one subscription (CPU only: a fan-out prepares them in runs)."""
        assert ttl_s > 0 and len(plaintext) <= MAX_PLAINTEXT_BYTES
        body = key.encrypt(plaintext, target)
        origin = target.origin
        url = httpx.URL(target.endpoint)
        headers = [
            (b"Host", url.netloc),  # the push service's name, whatever address the lane connects to
            (b"Authorization", self.keyring.authorization(key, origin).encode()),
            (b"Content-Encoding", b"aes128gcm"),
            (b"Content-Type", b"application/octet-stream"),
            (b"Content-Length", str(len(body)).encode()),
            (b"TTL", str(ttl_s).encode()),
            (b"Urgency", urgency.encode()),
        ]
        if topic:
            headers.append((b"Topic", topic.encode()))
        # stream=, not content=: httpx would otherwise work out Host and Content-Length again and copy the
        # body through its encoder (~10 µs a message, measured); the codec checks every field it writes.
        return PushMessage(origin, httpx.Request("POST", url, headers=headers, stream=httpx.ByteStream(body)))

    async def send(self, target: PushTarget, key: VapidKey, plaintext: bytes, *, ttl_s: int, urgency: str,
                   topic: str | None) -> PushReply:
        return await self.deliver(self.prepare(target, key, plaintext, ttl_s=ttl_s, urgency=urgency, topic=topic))

    async def deliver(self, message: PushMessage) -> PushReply:
        """Send a prepared message on one of its push service's lanes, within the send timeout."""
        origin, request = message.origin, message.request
        lane = await self._take_lane(origin)
        healthy = False
        try:
            async with asyncio.timeout(self._timeout_s):
                # No redirect handling exists on this path: a 3xx is an answer, never followed.
                response = await lane.handle_async_request(request)
            healthy = True
        except AddressRefused as exc:
            return PushReply(None, f"address_refused: {exc}")
        except TimeoutError:
            return PushReply(None, "timeout")
        except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError) as exc:
            return PushReply(None, f"{type(exc).__name__}: {exc}"[:300])
        finally:
            if healthy:
                self._origins[origin].free.put_nowait(lane)
            else:
                # Timed out, refused, broken or cancelled: its connection state is unknown, so it goes,
                # and a fresh lane takes its place for whoever waits (none waits for a lost one).
                self._origins[origin].free.put_nowait(_Lane(self._network, self._ssl_context))
                await lane.aclose()
        return PushReply(response.status_code, retry_after_s=_retry_after(response.headers.get("retry-after")))

    async def aclose(self) -> None:
        for slot in self._origins.values():
            while not slot.free.empty():
                await slot.free.get_nowait().aclose()
        self._origins.clear()
