"""The push service stand-in itself, driven by the third-party `webpush` package (not our sender)."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
from webpush import WebPush, WebPushSubscription
from webpush.vapid import VAPID

from tests.push.push_service import PushService

VAPID_PRIVATE_PEM, VAPID_PUBLIC_PEM, APPLICATION_SERVER_KEY = VAPID.generate_keys()


@pytest.fixture
async def service() -> AsyncIterator[PushService]:
    async with PushService() as svc:
        yield svc


@pytest.fixture
async def client(service: PushService) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(verify=service.client_ssl_context(), timeout=10) as c:
        yield c


def pusher(ttl: int = 60) -> WebPush:
    return WebPush(private_key=VAPID_PRIVATE_PEM, public_key=VAPID_PUBLIC_PEM, subscriber="ops@example.org", ttl=ttl)


def encrypt(subscription: dict, message: bytes | str | dict = b"hello") -> tuple[bytes, dict[str, str]]:
    msg = pusher().get(message, WebPushSubscription.model_validate(subscription))
    return msg.encrypted, dict(msg.headers)


def vapid_header(**claims_override: object) -> str:
    """A vapid Authorization signed by our key with the claims changed (None removes one)."""
    claims = {"aud": "https://push.gridrider.test", "exp": int(time.time()) + 3600, "sub": "mailto:ops@example.org"}
    claims.update(claims_override)
    claims = {k: v for k, v in claims.items() if v is not None}
    token = jwt.encode(claims, VAPID_PRIVATE_PEM, algorithm="ES256")
    return f"vapid t={token}, k={APPLICATION_SERVER_KEY}"


async def post(
    client: httpx.AsyncClient, service: PushService, endpoint: str, content: bytes, headers: dict[str, str]
) -> httpx.Response:
    """POST to the endpoint's path on 127.0.0.1:port while TLS and Host say host_name, as DNS would have it."""
    return await client.post(
        f"https://127.0.0.1:{service.port}{urlsplit(endpoint).path}",
        content=content,
        headers={"host": service.host_name, **headers},
        extensions={"sni_hostname": service.host_name},
    )


async def send(client: httpx.AsyncClient, service: PushService, subscription: dict,
               message: bytes | str | dict = b"hello", **extra: str) -> httpx.Response:
    body, headers = encrypt(subscription, message)
    return await post(client, service, subscription["endpoint"], body, {**headers, **extra})


async def test_webpush_message_is_verified_decrypted_and_recorded(service, client):
    sub = service.new_subscription()
    assert sub["endpoint"].startswith("https://push.gridrider.test/push/")
    assert set(sub) == {"endpoint", "expirationTime", "keys"} and sub["expirationTime"] is None

    response = await send(client, service, sub, {"kind": "deadline", "id": 7}, urgency="high", topic="problem-7")

    assert response.status_code == 201, service.rejected
    assert response.headers["location"].startswith(service.origin)
    await service.wait_for(1)
    [got] = service.messages_for(sub)
    assert got.json == {"kind": "deadline", "id": 7}
    assert json.loads(got.plaintext) == got.json
    assert got.endpoint == sub["endpoint"] and got.token == sub["endpoint"].rsplit("/", 1)[1]
    assert got.claims["aud"] == "https://push.gridrider.test"
    assert got.claims["sub"] == "mailto:ops@example.org"
    assert got.vapid_public_key == APPLICATION_SERVER_KEY
    assert got.headers["ttl"] == "60" and got.headers["urgency"] == "high" and got.headers["topic"] == "problem-7"
    assert service.messages_for(sub["endpoint"]) == [got]
    assert service.rejected == [] and service.requests == 1


async def test_non_json_plaintext_and_keep_alive(service, client):
    sub = service.new_subscription()
    for i in range(3):
        assert (await send(client, service, sub, f"plain {i}".encode())).status_code == 201
    assert [r.plaintext for r in service.received] == [b"plain 0", b"plain 1", b"plain 2"]
    assert all(r.json is None for r in service.received)


async def test_tls_verifies_for_host_name_only(service):
    ctx = service.client_ssl_context()
    _, writer = await asyncio.open_connection("127.0.0.1", service.port, ssl=ctx, server_hostname=service.host_name)
    writer.close()
    for name in ("other.gridrider.test", "127.0.0.1"):
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection("127.0.0.1", service.port, ssl=ctx, server_hostname=name)
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.open_connection(
            "127.0.0.1", service.port, ssl=ssl.create_default_context(), server_hostname=service.host_name
        )


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "https://other.gridrider.test"}, "aud"),
        ({"aud": "https://push.gridrider.test:443"}, "aud"),
        ({"aud": ["https://push.gridrider.test"]}, "aud"),
        ({"aud": None}, "aud"),
        # exp as seconds from when the test runs (a value fixed at collection goes stale in a long run)
        ({"exp_in": -60}, "past"),
        ({"exp_in": 24 * 3600 + 120}, "24 hours"),
        ({"sub": "ops@example.org"}, "sub"),
        ({"sub": "http://example.org"}, "sub"),
    ],
)
async def test_bad_vapid_claims_are_403(service, client, claims, reason):
    if "exp_in" in claims:
        claims = {"exp": int(time.time()) + claims["exp_in"]}
    sub = service.new_subscription()
    body, headers = encrypt(sub)
    response = await post(client, service, sub["endpoint"], body, {**headers, "authorization": vapid_header(**claims)})
    assert response.status_code == 403
    [rejected] = service.rejected
    assert rejected.status == 403 and reason in rejected.reason
    assert service.received == []


async def test_vapid_signed_by_another_key_or_wrong_scheme_is_403(service, client):
    sub = service.new_subscription()
    body, headers = encrypt(sub)
    _, _, other_key = VAPID.generate_keys()
    forged = vapid_header().replace(APPLICATION_SERVER_KEY, other_key)
    webpush_legacy = "WebPush " + vapid_header().split("t=", 1)[1].split(",", 1)[0]
    for authorization in (forged, webpush_legacy, "vapid t=abc", ""):
        response = await post(client, service, sub["endpoint"], body, {**headers, "authorization": authorization})
        assert response.status_code == 403
    assert [r.status for r in service.rejected] == [403] * 4
    assert "signature" in service.rejected[0].reason.lower()


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        ({"ttl": None}, 400, "TTL"),
        ({"ttl": "-1"}, 400, "TTL"),
        ({"ttl": "soon"}, 400, "TTL"),
        ({"content-encoding": None}, 415, "Content-Encoding"),
        ({"content-encoding": "aesgcm"}, 415, "Content-Encoding"),
        ({"urgency": "urgent"}, 400, "Urgency"),
        ({"topic": "x" * 33}, 400, "Topic"),
        ({"topic": "has space"}, 400, "Topic"),
    ],
)
async def test_bad_headers_are_refused(service, client, change, status, reason):
    sub = service.new_subscription()
    body, headers = encrypt(sub)
    headers.update(change)
    headers = {k: v for k, v in headers.items() if v is not None}
    response = await post(client, service, sub["endpoint"], body, headers)
    assert response.status_code == status
    [rejected] = service.rejected
    assert rejected.status == status and reason in rejected.reason


async def test_ttl_zero_is_accepted_and_recorded(service, client):
    sub = service.new_subscription()
    body, headers = encrypt(sub)
    response = await post(client, service, sub["endpoint"], body, {**headers, "ttl": "0"})
    assert response.status_code == 201
    assert service.received[0].headers["ttl"] == "0"


async def test_oversized_body_undecryptable_body_and_unknown_paths(service, client):
    sub = service.new_subscription()
    body, headers = encrypt(sub, b"x" * 5000)
    assert (await post(client, service, sub["endpoint"], body, headers)).status_code == 413

    _, headers = encrypt(sub)
    assert (await post(client, service, sub["endpoint"], b"\x00" * 100, headers)).status_code == 400
    other = service.new_subscription()
    body, headers = encrypt(other)  # encrypted for another subscription's keys
    assert (await post(client, service, sub["endpoint"], body, headers)).status_code == 400
    assert [r.status for r in service.rejected] == [413, 400, 400]

    body, headers = encrypt(sub)
    assert (await post(client, service, "https://x/push/nobody", body, headers)).status_code == 404
    assert (await post(client, service, "https://x/elsewhere", body, headers)).status_code == 404
    response = await client.get(
        f"https://127.0.0.1:{service.port}{urlsplit(sub['endpoint']).path}",
        headers={"host": service.host_name}, extensions={"sni_hostname": service.host_name},
    )
    assert response.status_code == 404
    assert len(service.rejected) == 3  # an unknown subscription is "gone", not a protocol fault
    assert service.requests == 6 and service.received == []


@pytest.mark.parametrize(
    ("behaviour", "status", "header"),
    [
        ("ok", 201, "location"),
        ("gone404", 404, None),
        ("gone410", 410, None),
        ("rate_limited", 429, "retry-after"),
        ("error500", 500, None),
        ("unauthorized401", 401, None),
        ("forbidden403", 403, None),
        ("bad_request400", 400, None),
        ("redirect", 307, "location"),
    ],
)
async def test_behaviours(service, client, behaviour, status, header):
    sub = service.new_subscription(behaviour)
    response = await send(client, service, sub)
    assert response.status_code == status
    if header:
        assert header in response.headers
    assert len(service.received) == (1 if behaviour == "ok" else 0)
    assert service.rejected == [] and service.requests == 1


async def test_rate_limited_says_retry_after_3_and_redirect_points_back(service, client):
    limited = service.new_subscription("rate_limited")
    assert (await send(client, service, limited)).headers["retry-after"] == "3"
    moved = service.new_subscription("redirect")
    response = await send(client, service, moved)
    assert response.headers["location"] == f"https://127.0.0.1:{service.port}{urlsplit(moved['endpoint']).path}"
    assert service.requests == 2  # httpx does not follow by default, and the service saw no second visit


async def test_too_large_accepts_a_small_retry(service, client):
    sub = service.new_subscription("too_large")
    assert (await send(client, service, sub, {"text": "x" * 300})).status_code == 413
    assert (await send(client, service, sub, {"id": 1})).status_code == 201
    assert [r.json for r in service.messages_for(sub)] == [{"id": 1}]


async def test_set_behaviour_by_token_or_endpoint(service, client):
    sub = service.new_subscription()
    service.set_behaviour(sub["endpoint"], "gone410")
    assert (await send(client, service, sub)).status_code == 410
    service.set_behaviour(sub["endpoint"].rsplit("/", 1)[1], "ok")
    assert (await send(client, service, sub)).status_code == 201
    with pytest.raises(ValueError, match="unknown behaviour"):
        service.set_behaviour(sub["endpoint"], "sometimes")


async def test_slow_does_not_block_others(service):
    slow, ok = service.new_subscription("slow"), service.new_subscription()
    async with (
        httpx.AsyncClient(verify=service.client_ssl_context(), timeout=10) as c1,
        httpx.AsyncClient(verify=service.client_ssl_context(), timeout=10) as c2,
    ):
        hanging = asyncio.create_task(send(c1, service, slow))
        started = time.monotonic()
        response = await send(c2, service, ok)
        assert response.status_code == 201 and time.monotonic() - started < 2
        await asyncio.sleep(0.2)
        assert not hanging.done()
        hanging.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hanging
    assert service.requests == 2 and len(service.received) == 1


async def test_slow_times_out_for_the_client(service):
    sub = service.new_subscription("slow")
    async with httpx.AsyncClient(verify=service.client_ssl_context(), timeout=0.3) as c:
        with pytest.raises(httpx.ReadTimeout):
            await send(c, service, sub)


async def test_malformed_http_closes_the_connection(service):
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", service.port, ssl=service.client_ssl_context(), server_hostname=service.host_name
    )
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_many_concurrent_connections(service):
    subs = [service.new_subscription() for _ in range(1000)]
    bodies = [encrypt(sub, {"n": i}) for i, sub in enumerate(subs)]
    # Ten clients of 100 connections each: one httpx pool of 1,000 spends its time scanning itself.
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    clients = [httpx.AsyncClient(verify=service.client_ssl_context(), timeout=60, limits=limits) for _ in range(10)]
    try:
        responses = await asyncio.gather(*(
            post(clients[i % 10], service, sub["endpoint"], body, headers)
            for i, (sub, (body, headers)) in enumerate(zip(subs, bodies, strict=True))
        ))
    finally:
        for c in clients:
            await c.aclose()
    assert {r.status_code for r in responses} == {201}
    await service.wait_for(1000)
    assert sorted(r.json["n"] for r in service.received) == list(range(1000))


async def test_stop_is_quick_with_idle_keep_alive_clients():
    service = PushService()
    await service.start()
    sub = service.new_subscription()
    async with httpx.AsyncClient(verify=service.client_ssl_context(), timeout=10) as c:
        assert (await send(c, service, sub)).status_code == 201
        started = time.monotonic()
        await service.stop()
        assert time.monotonic() - started < 1


async def test_wait_for_says_what_it_has(service):
    with pytest.raises(AssertionError, match="0 of 1 messages"):
        await service.wait_for(1, timeout=0.05)


# -- the counting sink used by `gridrider bench push` ------------------------------------------------


async def test_counting_sink_process(tmp_path: Path):
    port_file, cert_dir = tmp_path / "port", tmp_path / "certs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridrider.bench.push_sink", "--port-file", str(port_file), "--cert-dir", str(cert_dir)]
    )
    try:
        deadline = time.monotonic() + 15
        while not port_file.exists():
            assert proc.poll() is None, "push_sink exited early"
            assert time.monotonic() < deadline, "push_sink wrote no port file"
            await asyncio.sleep(0.05)
        port = int(port_file.read_text())
        host = "push.bench.invalid"
        ctx = ssl.create_default_context(cafile=cert_dir / "ca.pem")
        base = f"https://127.0.0.1:{port}"
        kw = {"headers": {"host": host}, "extensions": {"sni_hostname": host}}
        async with httpx.AsyncClient(verify=ctx, timeout=10) as c:
            before = time.time()
            for i in range(3):
                response = await c.post(
                    f"{base}/push/abc", content=b"x" * 100, headers={"host": host, "topic": f"t{i}"},
                    extensions={"sni_hostname": host},
                )
                assert response.status_code == 201 and response.content == b""
                assert response.headers["content-length"] == "0"
            stats = (await c.get(f"{base}/stats", **kw)).json()
            assert stats["count"] == 3
            assert [topic for topic, _ in stats["arrivals"]] == ["t0", "t1", "t2"]
            assert all(before <= t <= time.time() for _, t in stats["arrivals"])

            assert (await c.get(f"{base}/stats?reset=1", **kw)).json()["count"] == 3
            assert (await c.get(f"{base}/stats", **kw)).json() == {"count": 0, "arrivals": []}
            await c.post(f"{base}/push/abc", content=b"", **kw)
            assert (await c.get(f"{base}/stats", **kw)).json()["arrivals"][0][0] is None
            assert (await c.get(f"{base}/elsewhere", **kw)).status_code == 404
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)  # with this client's keep-alive connection still open
            while proc.poll() is None and time.monotonic() - started < 10:
                await asyncio.sleep(0.02)
            assert proc.returncode == 0 and time.monotonic() - started < 3
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
