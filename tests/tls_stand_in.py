"""The scaffolding shared by the local stand-ins for third-party HTTPS services (Web Push, Alibaba Cloud SMS, WeCom).

Each stand-in serves HTTP/1.1 (h11, keep-alive) over TLS on 127.0.0.1 with a certificate for its `host_name`
from a CA made at start; a client trusts it through `client_ssl_context()`. A subclass answers requests in
`handle`; everything about sockets, TLS and connections lives here.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Self

import h11

from gridrider.bench.push_sink import make_test_ca_and_leaf

Answer = tuple[int, list[tuple[str, str]], bytes]


class TlsStandIn(ABC):
    """An HTTPS server on 127.0.0.1:<port> for `host_name`; subclasses say what each request gets back."""

    read_limit = 1024 * 1024  # bodies beyond this are not a request worth reading: close instead
    backlog = 100  # asyncio.start_server's default
    close_politely = True  # False: a finished connection's transport is aborted instead of closed with TLS

    def __init__(self, host_name: str) -> None:
        self.host_name = host_name
        self.port = 0
        self.requests = 0
        self._ca_pem: bytes | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        ca_pem, leaf_pem, key_pem = make_test_ca_and_leaf(self.host_name)
        ctx = server_ssl_context(leaf_pem, key_pem)
        self._ca_pem = ca_pem
        self._server = await asyncio.start_server(self._on_connection, "127.0.0.1", 0, ssl=ctx,
                                                  backlog=self.backlog)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        # Abort, not close: a TLS close waits up to 30 s for the client's close_notify from idle keep-alive clients.
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    def client_ssl_context(self) -> ssl.SSLContext:
        if self._ca_pem is None:
            raise RuntimeError(f"{type(self).__name__}.start() makes the CA; call it first")
        return ssl.create_default_context(cadata=self._ca_pem.decode())

    @abstractmethod
    async def handle(self, request: h11.Request, body: bytes) -> Answer | None:
        """Status, headers and body for one request (content-length is added); None: hang until the client goes."""

    # -- HTTP ---------------------------------------------------------------------------------------

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            pass  # stop() cancels; asyncio 3.11 would log a cancelled connection task as an error
        except (h11.ProtocolError, ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, OSError):
            pass  # malformed HTTP or a vanished client: the connection just ends
        finally:
            if self.close_politely:
                writer.close()
                try:
                    await asyncio.wait_for(writer.wait_closed(), 2)
                except (Exception, asyncio.CancelledError):
                    writer.transport.abort()  # a client that never answers the TLS close_notify
            else:
                writer.transport.abort()
            self._connections.discard(task)
            self._writers.discard(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        while True:
            request, body = await self._read_request(conn, reader)
            if request is None:
                return
            self.requests += 1
            answer = await self.handle(request, body)
            if answer is None:  # hold the request until the client gives up
                while await reader.read(65536):
                    pass
                return
            status, headers, payload = answer
            headers = [*headers, ("content-length", str(len(payload)))]
            writer.write(conn.send(h11.Response(status_code=status, headers=headers)))
            if payload:
                writer.write(conn.send(h11.Data(data=payload)))
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()

    async def _read_request(self, conn: h11.Connection,
                            reader: asyncio.StreamReader) -> tuple[h11.Request | None, bytes]:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > self.read_limit:
                    return None, b""
            elif isinstance(event, h11.EndOfMessage):
                return request, bytes(body)
            else:  # ConnectionClosed, PAUSED
                return None, b""


def server_ssl_context(leaf_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # load_cert_chain reads files only; they are needed just for this call.
    with tempfile.TemporaryDirectory(prefix="tls-stand-in-") as tmp:
        leaf_path, key_path = Path(tmp, "leaf.pem"), Path(tmp, "leaf-key.pem")
        leaf_path.write_bytes(leaf_pem)
        key_path.write_bytes(key_pem)
        ctx.load_cert_chain(leaf_path, key_path)
    return ctx
