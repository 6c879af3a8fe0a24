"""Send one encrypted Web Push message and report what the push service answered.

Through httpx (its Request/Response and transport interface) over httpcore connections whose TCP
connector is push/network.py's vetted backend. Each push-service origin gets a set of "lanes", one
kept-alive connection each, handed out from a free list: httpcore's own pool rescans every connection
per request, which at 32 connections cost ~5× the CPU of the request itself (see `gridrider bench
push` in the note of the Web Push issue). A lane that timed out or broke is closed and replaced, so a
hanging push service holds at most its own lanes, never another service's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import time

import httpcore
import httpx
from webpush.types import WebPushKeys, WebPushSubscription

from gridrider.push.network import AddressRefused, PushNetwork, VettedBackend
from gridrider.push.vapid import VapidKey, VapidKeyring

MAX_PLAINTEXT_BYTES = 3000  # RFC 8291 leaves 3,993; 3,000 keeps every push service (and Apple's) happy


@dataclasses.dataclass(frozen=True)
class PushTarget:
    subscription_id: int
    endpoint: str
    p256dh: str  # base64url, as webpush wants it
    auth: str
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


class _Lane(httpx.AsyncBaseTransport):
    """One connection to one origin, as an httpx transport."""

    def __init__(self, network: PushNetwork, backend: VettedBackend) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=network.make_ssl_context(), max_connections=1, max_keepalive_connections=1,
            keepalive_expiry=60.0, network_backend=backend, retries=0,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=request.url.raw_scheme, host=request.url.raw_host, port=request.url.port,
                             target=request.url.raw_path),
            headers=request.headers.raw, content=request.content, extensions=request.extensions,
        )
        response = await self._pool.handle_async_request(core_request)
        try:
            body = b"".join([chunk async for chunk in response.stream])  # push services answer with small bodies
        finally:
            await response.aclose()
        return httpx.Response(status_code=response.status, headers=response.headers, content=body)

    async def aclose(self) -> None:
        await self._pool.aclose()


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
        self._timeout_s = timeout_s
        self._lanes_per_origin = lanes_per_origin
        self._origins: dict[str, _Origin] = {}

    async def _take_lane(self, origin: str) -> _Lane:
        slot = self._origins.get(origin)
        if slot is None:
            slot = self._origins[origin] = _Origin(self._lanes_per_origin)
        if slot.free.empty() and slot.made < slot.size:
            slot.made += 1
            return _Lane(self._network, self._backend)
        return await slot.free.get()

    async def send(self, target: PushTarget, key: VapidKey, plaintext: bytes, *, ttl_s: int, urgency: str,
                   topic: str | None) -> PushReply:
        assert ttl_s > 0 and len(plaintext) <= MAX_PLAINTEXT_BYTES
        subscription = WebPushSubscription.model_construct(
            endpoint=target.endpoint, keys=WebPushKeys.model_construct(p256dh=target.p256dh, auth=target.auth))
        body = key.encrypt(plaintext, subscription)
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
                self._origins[origin].free.put_nowait(_Lane(self._network, self._backend))
                await lane.aclose()
        return PushReply(response.status_code, retry_after_s=_retry_after(response.headers.get("retry-after")))

    async def aclose(self) -> None:
        for slot in self._origins.values():
            while not slot.free.empty():
                await slot.free.get_nowait().aclose()
        self._origins.clear()
