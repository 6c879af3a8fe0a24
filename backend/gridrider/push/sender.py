"""Send one encrypted Web Push message and report what the push service answered.

Through httpx (its Request/Response and transport interface); each push-service origin gets a set of
"lanes", one kept-alive HTTP/1.1 connection each, handed out from a free list, whose TCP connection
comes from push/network.py's vetted connector. A lane that timed out or broke is closed and replaced,
so a hanging push service holds at most its own lanes, never another service's. (httpx's default
httpcore pool rescans every connection per request: at 32 connections that cost ~5× the CPU of the
request itself; see `gridrider bench push`.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import ssl
import time

import h11
import httpcore
import httpx

from gridrider.push.network import AddressRefused, PushNetwork, VettedBackend
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
        scheme, _, rest = self.endpoint.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}"


@dataclasses.dataclass(frozen=True)
class PushReply:
    status: int | None  # HTTP status, None when no answer came (timeout, refused, network error)
    error: str | None = None
    retry_after_s: float | None = None


class _ClosedBeforeAnswer(Exception):
    """The connection ended before any byte of an answer arrived."""


class _Lane(httpx.AsyncBaseTransport):
    """One kept-alive HTTP/1.1 connection to one push service, as an httpx transport (h11 speaks the protocol).

    httpcore's pool, which httpx uses by default, spent ~30% of a send in anyio locks and cancel
    scopes and rescans its connections per request; a lane carries one request at a time, so it
    needs neither. The TCP connection comes from the vetted connector (push/network.py).
    """

    def __init__(self, backend: VettedBackend, ssl_context: ssl.SSLContext) -> None:
        self._backend = backend
        self._ssl_context = ssl_context
        self._stream: httpcore.AsyncNetworkStream | None = None
        self._h11: h11.Connection | None = None

    async def _connection(self, host: str, port: int) -> tuple[httpcore.AsyncNetworkStream, h11.Connection, bool]:
        """The lane's connection, and whether it is a reused one; one the server has visibly closed is replaced."""
        stream, conn = self._stream, self._h11
        if stream is not None and conn is not None and conn.our_state is h11.IDLE \
                and not stream.get_extra_info("is_readable"):
            return stream, conn, True
        await self.aclose()
        stream = await self._backend.connect_tcp(host, port)
        stream = await stream.start_tls(self._ssl_context, server_hostname=host)
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=64 * 1024)
        self._stream, self._h11 = stream, conn
        return stream, conn, False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        stream, conn, reused = await self._connection(url.host, url.port or 443)
        try:
            return await self._exchange(stream, conn, request)
        except _ClosedBeforeAnswer:
            if not reused:
                raise httpcore.RemoteProtocolError("connection closed before a response") from None
        # The server had closed this idle keep-alive connection before our request reached it (it
        # answered nothing): the request goes once more, on a new connection.
        stream, conn, _ = await self._connection(url.host, url.port or 443)
        try:
            return await self._exchange(stream, conn, request)
        except _ClosedBeforeAnswer:
            raise httpcore.RemoteProtocolError("connection closed before a response") from None

    async def _exchange(self, stream: httpcore.AsyncNetworkStream, conn: h11.Connection,
                        request: httpx.Request) -> httpx.Response:
        url = request.url
        # httpx.Request has set Host (the push service's name) and Content-Length.
        head = conn.send(h11.Request(method=request.method, target=url.raw_path, headers=request.headers.raw))
        response: h11.Response | None = None
        body = bytearray()
        try:
            try:
                await stream.write(head + conn.send(h11.Data(data=request.content)) + conn.send(h11.EndOfMessage()))
            except httpcore.WriteError:
                raise _ClosedBeforeAnswer() from None
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    try:
                        data = await stream.read(65536)
                    except httpcore.ReadError:
                        data = b""
                    if not data and response is None:
                        raise _ClosedBeforeAnswer()
                    conn.receive_data(data)
                elif isinstance(event, h11.Response):
                    response = event
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > 64 * 1024:  # push services answer with small bodies
                        raise httpcore.RemoteProtocolError("response body too large")
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    break
        except h11.ProtocolError as exc:
            await self.aclose()
            raise httpcore.RemoteProtocolError(str(exc)) from exc
        except BaseException:  # closed early, timed out, cancelled: the connection's state is unknown
            await self.aclose()
            raise
        if response is None:
            await self.aclose()
            raise httpcore.RemoteProtocolError("connection closed before a response")
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        else:
            await self.aclose()  # not reusable (Connection: close, or an unread remainder)
        return httpx.Response(status_code=response.status_code, headers=response.headers, content=bytes(body))

    async def aclose(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()
        self._stream = self._h11 = None


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
        self._backend = VettedBackend(network)
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
            return _Lane(self._backend, self._ssl_context)
        return await slot.free.get()

    async def send(self, target: PushTarget, key: VapidKey, plaintext: bytes, *, ttl_s: int, urgency: str,
                   topic: str | None) -> PushReply:
        assert ttl_s > 0 and len(plaintext) <= MAX_PLAINTEXT_BYTES
        body = key.encrypt(plaintext, target)
        headers = {
            "authorization": self.keyring.authorization(key, target.origin),
            "content-encoding": "aes128gcm",
            "content-type": "application/octet-stream",
            "ttl": str(ttl_s),
            "urgency": urgency,
        }
        if topic:
            headers["topic"] = topic
        request = httpx.Request("POST", target.endpoint, headers=headers, content=body)
        origin = target.origin
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
                self._origins[origin].free.put_nowait(_Lane(self._backend, self._ssl_context))
                await lane.aclose()
        return PushReply(response.status_code, retry_after_s=_retry_after(response.headers.get("retry-after")))

    async def aclose(self) -> None:
        for slot in self._origins.values():
            while not slot.free.empty():
                await slot.free.get_nowait().aclose()
        self._origins.clear()
