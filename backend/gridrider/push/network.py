"""Where the push sender may connect: resolve once, refuse unless every address is public, connect there.

The sender's HTTP stack (httpx over httpcore) asks this backend for a TCP connection to the push
service's *host name*; the backend resolves the name itself, refuses the whole name if any address is
loopback/private/link-local/reserved, and connects to the address it vetted. TLS then verifies the
certificate against the host name (SNI) and the request carries it in `Host`, so nothing downstream
resolves the name a second time — a DNS answer that changes between check and use (rebinding)
cannot steer a connection inward.

`PushNetwork` is the single seam tests use to reach their local push service: a resolver, an address
policy, a CA and extra hosts, passed in as an object. No setting or environment variable builds one;
production always uses `PUBLIC_INTERNET`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import httpcore
import httpx

Address = tuple[str, int]
Resolver = Callable[[str, int], Awaitable[list[Address]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Connected = TypeVar("Connected")


class AddressRefused(httpcore.ConnectError):
    """The push host resolved to an address the sender must not reach (or to nothing)."""


def is_public_address(address: IPAddress) -> bool:
    """Globally routable unicast only; an IPv6-mapped/-compatible IPv4 address is judged as that IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None:
            return is_public_address(embedded)
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_unspecified)


async def system_resolve(host: str, port: int) -> list[Address]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [(info[4][0], info[4][1]) for info in infos]


@dataclasses.dataclass(frozen=True)
class PushNetwork:
    resolve: Resolver = system_resolve
    address_allowed: Callable[[IPAddress], bool] = is_public_address
    # None → the system's trusted CAs.
    ssl_context: ssl.SSLContext | None = None
    # Push hosts accepted in addition to the GRIDRIDER_PUSH_HOSTS setting (a test's local push service).
    extra_hosts: frozenset[str] = frozenset()

    def allowed_hosts(self, configured: Iterable[str]) -> tuple[str, ...]:
        return (*configured, *sorted(self.extra_hosts))

    def make_ssl_context(self) -> ssl.SSLContext:
        return self.ssl_context if self.ssl_context is not None else ssl.create_default_context()


PUBLIC_INTERNET = PushNetwork()


async def vetted_addresses(network: PushNetwork, host: str, port: int) -> list[Address]:
    """Every address the name resolves to, if all of them may be reached; AddressRefused otherwise."""
    try:
        addresses = await network.resolve(host, port)
    except OSError as exc:
        raise AddressRefused(f"{host}: cannot resolve ({exc})") from None
    if not addresses:
        raise AddressRefused(f"{host}: resolves to nothing")
    for ip, _ in addresses:
        try:
            parsed = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            raise AddressRefused(f"{host}: resolver returned {ip!r}, not an address") from None
        if not network.address_allowed(parsed):
            # All or nothing: a name with one inward address is treated as hostile, not filtered.
            raise AddressRefused(f"{host}: resolves to a non-public address")
    return addresses


async def connect_vetted(network: PushNetwork, host: str, port: int,
                         connect: Callable[[str, int], Awaitable[Connected]], *,
                         timeout: float | None = None) -> Connected:  # noqa: ASYNC109
    """`connect(address, port)` to the first vetted address of `host` that answers; never to any other.

    The one way this package opens a connection: the httpx client's streams (VettedBackend) and the
    push sender's lanes both come through here. Raises AddressRefused, httpcore.ConnectTimeout or
    httpcore.ConnectError (a TLS failure included, when `connect` does the handshake).
    """
    addresses = await vetted_addresses(network, host, port)
    last_error: Exception | None = None
    for ip, ip_port in addresses:
        try:
            async with asyncio.timeout(timeout):
                return await connect(ip, ip_port)
        except TimeoutError as exc:
            last_error = httpcore.ConnectTimeout(f"{host}: connect timed out")
            last_error.__cause__ = exc
        except OSError as exc:  # ssl.SSLError is one
            last_error = httpcore.ConnectError(f"{host}: {exc}")
    assert last_error is not None
    raise last_error


# httpcore defines the `timeout` parameters of this interface (ASYNC109 does not apply).
class _Stream(httpcore.AsyncNetworkStream):
    """An asyncio stream for httpcore (its default goes through anyio, which costs ~40% more CPU per request)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout("read timed out") from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if not buffer:
            return
        try:
            self._writer.write(buffer)
            async with asyncio.timeout(timeout):
                await self._writer.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout("write timed out") from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        self._writer.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:  # noqa: ASYNC109
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError as exc:
            self._writer.close()
            raise httpcore.ConnectTimeout("TLS handshake timed out") from exc
        except (OSError, ssl.SSLError) as exc:
            self._writer.close()
            raise httpcore.ConnectError(f"TLS: {exc}") from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        match info:
            case "ssl_object":
                return self._writer.get_extra_info("ssl_object")
            case "server_addr":
                return self._writer.get_extra_info("peername")
            case "client_addr":
                return self._writer.get_extra_info("sockname")
            case "socket":
                return self._writer.get_extra_info("socket")
            case "is_readable":
                # httpcore asks before reusing an idle connection: readable means the server closed it.
                return self._reader.at_eof() or bool(getattr(self._reader, "_buffer", b""))
        return None


class VettedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's TCP connector, replaced by: resolve, vet every address, connect to a vetted one."""

    def __init__(self, network: PushNetwork) -> None:
        self._network = network

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109
                          local_address: str | None = None, socket_options: Iterable[Any] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        reader, writer = await connect_vetted(self._network, host, port, asyncio.open_connection, timeout=timeout)
        return _Stream(reader, writer)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,  # noqa: ASYNC109
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("unix sockets are never a push service")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _VettedTransport(httpx.AsyncBaseTransport):
    """httpx over httpcore's pool whose TCP connector is the vetted one (low-volume callers: WeCom, SMS)."""

    def __init__(self, network: PushNetwork) -> None:
        self._pool = httpcore.AsyncConnectionPool(ssl_context=network.make_ssl_context(), max_connections=20,
                                                  network_backend=VettedBackend(network), retries=0)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._pool.handle_async_request(httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=request.url.raw_scheme, host=request.url.raw_host, port=request.url.port,
                             target=request.url.raw_path),
            headers=request.headers.raw, content=request.content, extensions=request.extensions))
        try:
            body = b"".join([chunk async for chunk in response.stream])
        finally:
            await response.aclose()
        return httpx.Response(status_code=response.status, headers=response.headers, content=body)

    async def aclose(self) -> None:
        await self._pool.aclose()


def vetted_client(network: PushNetwork, *, timeout_s: float = 10.0) -> httpx.AsyncClient:
    """An httpx client that only ever connects to addresses `network` allows (public ones in production),
    never follows redirects, and resolves each host exactly once per connection."""
    return httpx.AsyncClient(transport=_VettedTransport(network), timeout=timeout_s, follow_redirects=False)
