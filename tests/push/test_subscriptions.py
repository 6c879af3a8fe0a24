"""Subscribing a browser: the current key, one's own subscriptions only, refusal of unsafe endpoints."""

from __future__ import annotations

from gridrider.push.vapid import VapidKeyring
from tests.conftest import Caller

GRID = "ZW-ZWZ-C01-G01"


async def courier(login, phone: str = "13900000051") -> Caller:
    return await login("courier", phone, [GRID])


async def test_key_is_the_current_vapid_key(push_client, login, settings) -> None:
    me = await courier(login)
    ring = VapidKeyring.from_text(settings.vapid_private_key, settings.vapid_subject)
    reply = await push_client.get("/api/v1/push/key", headers=me.headers)
    assert reply.status_code == 200
    assert reply.json() == {"key_id": ring.current.id, "application_server_key": ring.current.application_server_key}
    assert (await push_client.get("/api/v1/push/key")).status_code == 401


async def test_subscribe_list_resubscribe_and_delete_own(push_client, push_service, login, db, settings) -> None:
    me = await courier(login)
    browser = push_service.new_subscription()
    reply = await push_client.post("/api/v1/push/subscriptions", json=browser,
                                   headers={**me.headers, "User-Agent": "Mozilla/5.0 (Android 14) Chrome/131"})
    assert reply.status_code == 201, reply.text
    created = reply.json()
    ring = VapidKeyring.from_text(settings.vapid_private_key, settings.vapid_subject)
    assert created["endpoint"] == browser["endpoint"] and created["vapid_key_id"] == ring.current.id
    assert created["key_is_current"] is True and created["user_agent"].startswith("Mozilla/5.0")

    # The browser renews its keys: same endpoint, same row, new keys, 200.
    renewed = {**browser, "keys": push_service.new_subscription()["keys"]}
    reply = await push_client.post("/api/v1/push/subscriptions", json=renewed, headers=me.headers)
    assert reply.status_code == 200 and reply.json()["id"] == created["id"]
    stored = await db.fetchval("SELECT p256dh FROM push_subscriptions WHERE id = $1", created["id"])
    assert stored != b"" and len(stored) == 65

    listed = (await push_client.get("/api/v1/push/subscriptions", headers=me.headers)).json()
    assert [s["id"] for s in listed] == [created["id"]]
    assert (await push_client.delete(f"/api/v1/push/subscriptions/{created['id']}", headers=me.headers)
            ).status_code == 204
    assert (await push_client.get("/api/v1/push/subscriptions", headers=me.headers)).json() == []


async def test_someone_elses_subscription_is_not_found(push_client, push_service, login) -> None:
    owner, other = await courier(login, "13900000052"), await courier(login, "13900000053")
    browser = push_service.new_subscription()
    sub_id = (await push_client.post("/api/v1/push/subscriptions", json=browser, headers=owner.headers)).json()["id"]
    assert (await push_client.delete(f"/api/v1/push/subscriptions/{sub_id}", headers=other.headers)
            ).status_code == 404
    reply = await push_client.delete("/api/v1/push/subscriptions", params={"endpoint": browser["endpoint"]},
                                     headers=other.headers)
    assert reply.status_code == 404 and reply.json()["code"] == "not_found"
    assert (await push_client.get("/api/v1/push/subscriptions", headers=other.headers)).json() == []
    assert [s["id"] for s in (await push_client.get("/api/v1/push/subscriptions", headers=owner.headers)).json()] \
        == [sub_id]
    # By endpoint, the owner may.
    assert (await push_client.delete("/api/v1/push/subscriptions", params={"endpoint": browser["endpoint"]},
                                     headers=owner.headers)).status_code == 204


async def test_endpoint_posted_by_another_member_moves_to_them(push_client, push_service, login) -> None:
    first, second = await courier(login, "13900000054"), await courier(login, "13900000055")
    browser = push_service.new_subscription()
    sub_id = (await push_client.post("/api/v1/push/subscriptions", json=browser, headers=first.headers)).json()["id"]
    reply = await push_client.post("/api/v1/push/subscriptions", json=browser, headers=second.headers)
    assert reply.status_code == 200 and reply.json()["id"] == sub_id
    assert (await push_client.get("/api/v1/push/subscriptions", headers=first.headers)).json() == []
    assert [s["id"] for s in (await push_client.get("/api/v1/push/subscriptions", headers=second.headers)).json()] \
        == [sub_id]


async def test_unsafe_endpoints_and_bad_keys_are_refused_with_a_code(push_client, push_service, login, db) -> None:
    me = await courier(login)
    good = push_service.new_subscription()
    cases = {
        "http://fcm.googleapis.com/fcm/send/x": "push_endpoint_not_https",
        "https://127.0.0.1/push/x": "push_endpoint_ip_literal",
        "https://[::ffff:7f00:1]/push/x": "push_endpoint_ip_literal",
        "https://2130706433/push/x": "push_endpoint_ip_literal",
        f"https://{push_service.host_name}.evil.example/push/x": "push_endpoint_host_not_allowed",
        f"https://evil.example/{push_service.host_name}/push/x": "push_endpoint_host_not_allowed",
        f"https://a:b@{push_service.host_name}/push/x": "push_endpoint_userinfo",
        f"https://{push_service.host_name}:{push_service.port}/push/x": "push_endpoint_port",
        f"https://{push_service.host_name}/" + "x" * 2000: "push_endpoint_too_long",
    }
    for endpoint, code in cases.items():
        reply = await push_client.post("/api/v1/push/subscriptions", json={**good, "endpoint": endpoint},
                                       headers={**me.headers, "Accept-Language": "en"})
        assert reply.status_code == 422, endpoint
        body = reply.json()
        assert body["code"] == code, (endpoint, body)
        assert body["title"] and body["errors"][0]["field"] == "endpoint" and body["errors"][0]["code"] == code
        assert body["errors"][0]["message"].isascii()  # English on request
    swapped = {"p256dh": good["keys"]["auth"], "auth": good["keys"]["auth"]}
    reply = await push_client.post("/api/v1/push/subscriptions", json={**good, "keys": swapped}, headers=me.headers)
    assert reply.status_code == 422 and reply.json()["code"] == "push_key_invalid"
    reply = await push_client.post("/api/v1/push/subscriptions",
                                   json={**good, "keys": {"p256dh": good["keys"]["p256dh"], "auth": "AAAA"}},
                                   headers=me.headers)
    assert reply.status_code == 422 and reply.json()["code"] == "push_auth_invalid"
    reply = await push_client.post("/api/v1/push/subscriptions", json={"endpoint": good["endpoint"]},
                                   headers=me.headers)
    assert 400 <= reply.status_code < 500
    assert await db.fetchval("SELECT count(*) FROM push_subscriptions") == 0


async def test_production_allow_list_refuses_the_test_push_host(client, push_service, login) -> None:
    """Without the injected test network, the local service's host is just an unknown push service."""
    me = await courier(login)
    reply = await client.post("/api/v1/push/subscriptions", json=push_service.new_subscription(), headers=me.headers)
    assert reply.status_code == 422 and reply.json()["code"] == "push_endpoint_host_not_allowed"


async def test_a_member_keeps_at_most_ten_subscriptions(push_client, push_service, login, clock) -> None:
    me = await courier(login)
    ids = []
    for _ in range(12):
        clock.advance(seconds=1)
        reply = await push_client.post("/api/v1/push/subscriptions", json=push_service.new_subscription(),
                                       headers=me.headers)
        ids.append(reply.json()["id"])
    kept = [s["id"] for s in (await push_client.get("/api/v1/push/subscriptions", headers=me.headers)).json()]
    assert kept == ids[2:]
