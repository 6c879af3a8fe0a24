"""A push service stand-in that only counts, so `gridrider bench push` measures the sender, not the fake.

    python -m gridrider.bench.push_sink --port-file PATH --cert-dir DIR [--host-name push.bench.invalid]

Writes ca.pem (the CA to trust), leaf.pem and leaf-key.pem into DIR, listens with TLS on 127.0.0.1:0,
then writes its port to PATH. Every POST gets `201` with an empty body: no decryption, no JWT check.
`GET /stats` answers {"count": N, "arrivals": [[topic, time.time()], ...]}; `GET /stats?reset=1`
answers the same and then zeroes both. SIGTERM / SIGINT exit with status 0.

`make_test_ca_and_leaf` is shared with tests/push/push_service.py (tests import the product, not
the other way round).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import signal
import ssl
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024


def make_test_ca_and_leaf(host_name: str, *, days: int = 30) -> tuple[bytes, bytes, bytes]:
    """A fresh self-signed CA and a leaf for `host_name` signed by it: (ca_pem, leaf_cert_pem, leaf_key_pem).

    P-256 keys keep thousands of TLS handshakes cheap; the extensions satisfy strict X.509 checking."""
    now = dt.datetime.now(dt.UTC)
    not_before, not_after = now - dt.timedelta(hours=1), now + dt.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"gridrider test CA for {host_name}")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host_name)]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host_name)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return (
        ca_cert.public_bytes(serialization.Encoding.PEM),
        leaf_cert.public_bytes(serialization.Encoding.PEM),
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def write_cert_files(cert_dir: Path, host_name: str) -> tuple[Path, Path, Path]:
    """Generate and write ca.pem, leaf.pem, leaf-key.pem (0600) into cert_dir; returns their paths."""
    cert_dir.mkdir(parents=True, exist_ok=True)
    ca_pem, leaf_pem, key_pem = make_test_ca_and_leaf(host_name)
    ca_path, leaf_path, key_path = cert_dir / "ca.pem", cert_dir / "leaf.pem", cert_dir / "leaf-key.pem"
    ca_path.write_bytes(ca_pem)
    leaf_path.write_bytes(leaf_pem)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_pem)
    return ca_path, leaf_path, key_path


class SinkStats:
    def __init__(self) -> None:
        self.count = 0
        self.arrivals: list[tuple[str | None, float]] = []

    def snapshot(self, reset: bool) -> bytes:
        body = json.dumps({"count": self.count, "arrivals": self.arrivals}).encode()
        if reset:
            self.count = 0
            self.arrivals = []
        return body


_CREATED = b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n"
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
_BAD = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_LENGTH_REQUIRED = b"HTTP/1.1 411 Length Required\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class SinkProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive with Content-Length bodies only; pipelined requests are answered in order."""

    def __init__(self, stats: SinkStats) -> None:
        self.stats = stats
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        # A parsed head whose body has not fully arrived: (method, target, topic, close, body_end).
        self.pending: tuple[str, str, str | None, bool, int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.transport is not None and not self.transport.is_closing():
            if self.pending is None and not self._parse_head():
                return
            assert self.pending is not None
            method, target, topic, close, body_end = self.pending
            if len(self.buf) < body_end:
                return
            del self.buf[:body_end]
            self.pending = None
            self._answer(method, target, topic, close)

    def _parse_head(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > MAX_HEAD:
                self._fail(_BAD)
            return False
        lines = self.buf[:end].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self._fail(_BAD)
            return False
        method, target, version = parts
        length, topic, close = 0, None, version == "HTTP/1.0"
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                self._fail(_BAD)
                return False
            name = name.strip().lower()
            if name == "content-length":
                value = value.strip()
                if not value.isdigit() or int(value) > MAX_BODY:
                    self._fail(_BAD)
                    return False
                length = int(value)
            elif name == "topic":
                topic = value.strip()
            elif name == "connection":
                tokens = value.lower()
                close = "close" in tokens or (close and "keep-alive" not in tokens)
            elif name == "transfer-encoding":
                self._fail(_LENGTH_REQUIRED)
                return False
        self.pending = (method, target, topic, close, end + 4 + length)
        return True

    def _answer(self, method: str, target: str, topic: str | None, close: bool) -> None:
        assert self.transport is not None
        if method == "POST":
            self.stats.count += 1
            self.stats.arrivals.append((topic, time.time()))
            self.transport.write(_CREATED)
        elif method == "GET" and target.split("?", 1)[0] == "/stats":
            body = self.stats.snapshot(reset="reset=1" in target.partition("?")[2].split("&"))
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
                + body
            )
        else:
            self.transport.write(_NOT_FOUND)
        if close:
            self.transport.close()

    def _fail(self, response: bytes) -> None:
        assert self.transport is not None
        self.transport.write(response)
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


def server_ssl_context(leaf_path: Path, key_path: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(leaf_path, key_path)
    return ctx


async def serve(port_file: Path, cert_dir: Path, host_name: str) -> int:
    _, leaf_path, key_path = write_cert_files(cert_dir, host_name)
    stats = SinkStats()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SinkProtocol(stats), "127.0.0.1", 0, ssl=server_ssl_context(leaf_path, key_path), backlog=4096
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    port = server.sockets[0].getsockname()[1]
    # Rename so a reader polling for the file never sees it half-written.
    tmp = port_file.with_name(port_file.name + ".tmp")
    tmp.write_text(f"{port}\n")
    tmp.replace(port_file)
    try:
        await stop.wait()
    finally:
        server.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gridrider.bench.push_sink", description=__doc__.split("\n")[0])
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--cert-dir", type=Path, required=True)
    parser.add_argument("--host-name", default="push.bench.invalid")
    args = parser.parse_args(argv)
    try:
        import uvloop  # a dependency of uvicorn[standard]; the sink should cost the bench as little as possible

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    return runner(serve(args.port_file, args.cert_dir, args.host_name))


if __name__ == "__main__":
    raise SystemExit(main())
