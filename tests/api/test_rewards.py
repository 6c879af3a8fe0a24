"""Rewards and redemptions (DESIGN.md §2d): the catalogue, requests, scoped decisions, and the races."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from gridrider.clock import local_day
from gridrider.db import redemptions as db_redemptions
from gridrider.domain import redemptions
from gridrider.domain.redemptions import InsufficientPoints, RewardUnavailable

GRID = "ZW-ZWZ-C02-G01"
OTHER_GRID = "ZW-ZWZ-C03-G01"
COMMUNITY = "ZW-ZWZ-C02"
OTHER_COMMUNITY = "ZW-ZWZ-C03"

_decisions = itertools.count(1)


async def give_points(db, clock, member_id: int, amount: int) -> None:
    """An audited adjustment, written straight into the ledger."""
    now = clock.now()
    async with db.acquire() as conn:
        await conn.execute(
            """INSERT INTO points_ledger (member_id, reason, amount, source_kind, source_id, cycle, counts_toward_cap,
                                          counts_toward_ranking, local_day, created_at)
               VALUES ($1, 'adjustment', $2, 'decision', $3, 0, false, true, $4, $5)""",
            member_id, amount, next(_decisions), local_day(now), now)


async def penalise(db, clock, member_id: int, incident_id: int) -> None:
    """A `not_a_hazard` penalty (−5), as the points code writes it."""
    now = clock.now()
    async with db.acquire() as conn:
        await conn.execute(
            """INSERT INTO points_ledger (member_id, reason, amount, source_kind, source_id, cycle, counts_toward_cap,
                                          counts_toward_ranking, local_day, created_at)
               VALUES ($1, 'not_a_hazard', -5, 'incident', $2, 1, false, true, $3, $4)""",
            member_id, incident_id, local_day(now), now)


async def balance(db, member_id: int) -> int:
    return await db.fetchval("SELECT coalesce(sum(amount), 0) FROM points_ledger WHERE member_id = $1", member_id)


@pytest.fixture
def people(login):
    async def make():
        supervisor = await login("supervisor", "13911110001", [COMMUNITY])
        outsider = await login("supervisor", "13911110002", [OTHER_COMMUNITY])
        rider = await login("courier", "13922220001", [GRID])
        return supervisor, outsider, rider

    return make


async def new_reward(client, caller, **fields) -> dict:
    reply = await client.post("/api/v1/rewards", headers=caller.headers,
                              json={"name_zh": "保温箱", "name_en": "Thermal bag", "cost": 30, **fields})
    assert reply.status_code == 201, reply.text
    return reply.json()


async def redeem(client, rider, reward_id: int):
    return await client.post("/api/v1/redemptions", headers=rider.headers, json={"reward_id": reward_id})


# ── catalogue ─────────────────────────────────────────────────────────────────────────────────────


async def test_supervisors_keep_the_catalogue_and_riders_see_enabled_rewards(client, people):
    supervisor, _outsider, rider = await people()
    bag = await new_reward(client, supervisor, stock=5)
    assert (bag["cost"], bag["stock"], bag["enabled"], bag["name_en"]) == (30, 5, True, "Thermal bag")
    unlimited = await new_reward(client, supervisor, name_zh="雨衣", name_en=None, cost=10)
    assert unlimited["stock"] is None

    reply = await client.patch(f"/api/v1/rewards/{bag['id']}", headers=supervisor.headers, json={"enabled": False})
    assert reply.status_code == 200 and reply.json()["enabled"] is False

    seen_by_rider = (await client.get("/api/v1/rewards", headers=rider.headers)).json()
    assert [r["id"] for r in seen_by_rider] == [unlimited["id"]]
    seen_by_supervisor = (await client.get("/api/v1/rewards", headers=supervisor.headers)).json()
    assert {r["id"] for r in seen_by_supervisor} == {bag["id"], unlimited["id"]}

    reply = await client.patch(f"/api/v1/rewards/{bag['id']}", headers=supervisor.headers,
                               json={"stock": None, "cost": 40, "enabled": True})
    assert (reply.json()["stock"], reply.json()["cost"], reply.json()["enabled"]) == (None, 40, True)
    reply = await client.patch("/api/v1/rewards/999999", headers=supervisor.headers, json={"cost": 1})
    assert reply.status_code == 404


async def test_a_courier_cannot_touch_the_catalogue(client, people):
    supervisor, _outsider, rider = await people()
    reward = await new_reward(client, supervisor)
    assert (await client.post("/api/v1/rewards", headers=rider.headers,
                              json={"name_zh": "x", "cost": 1})).status_code == 403
    assert (await client.patch(f"/api/v1/rewards/{reward['id']}", headers=rider.headers,
                               json={"cost": 1})).status_code == 403


@pytest.mark.parametrize(("body", "field"), [
    ({"name_zh": "x", "cost": 0}, "cost"),
    ({"name_zh": "x", "cost": -3}, "cost"),
    ({"name_zh": "x", "cost": 5, "stock": -1}, "stock"),
    ({"name_zh": "x", "cost": 5, "price": 3}, "price"),
    ({"cost": 5}, "name_zh"),
    ({"name_zh": "   ", "cost": 5}, "name_zh"),
])
async def test_invalid_rewards_are_422(client, people, body, field):
    supervisor, _outsider, _rider = await people()
    reply = await client.post("/api/v1/rewards", headers=supervisor.headers, json=body)
    assert reply.status_code == 422, reply.text
    assert reply.json()["code"] == "validation_failed"
    assert field in {e["field"] for e in reply.json()["errors"]}


@pytest.mark.parametrize("body", [{"cost": 0}, {"stock": -1}, {"owner": 1}, {"name_zh": None}])
async def test_invalid_patches_are_422(client, people, body):
    supervisor, _outsider, _rider = await people()
    reward = await new_reward(client, supervisor)
    reply = await client.patch(f"/api/v1/rewards/{reward['id']}", headers=supervisor.headers, json=body)
    assert reply.status_code == 422, reply.text


async def test_invalid_redemption_bodies_are_422(client, people):
    supervisor, _outsider, rider = await people()
    reward = await new_reward(client, supervisor)
    assert (await client.post("/api/v1/redemptions", headers=rider.headers,
                              json={"reward_id": reward["id"], "note": "x"})).status_code == 422
    assert (await client.post("/api/v1/redemptions", headers=rider.headers, json={})).status_code == 422
    assert (await redeem(client, rider, 999999)).status_code == 404


# ── requesting ────────────────────────────────────────────────────────────────────────────────────


async def test_a_rider_below_the_cost_is_told_both_numbers(client, db, clock, people):
    supervisor, _outsider, rider = await people()
    reward = await new_reward(client, supervisor, cost=30)
    await give_points(db, clock, rider.member_id, 20)
    reply = await redeem(client, rider, reward["id"])
    assert reply.status_code == 409
    problem = reply.json()
    assert (problem["code"], problem["balance"], problem["cost"]) == ("insufficient_points", 20, 30)
    assert "20" in problem["detail"] and "30" in problem["detail"]
    assert reply.headers["content-type"].startswith("application/problem+json")


async def test_disabled_or_sold_out_rewards_cannot_be_redeemed(client, db, clock, people):
    supervisor, _outsider, rider = await people()
    await give_points(db, clock, rider.member_id, 100)
    disabled = await new_reward(client, supervisor, enabled=False)
    sold_out = await new_reward(client, supervisor, stock=0)
    for reward in (disabled, sold_out):
        reply = await redeem(client, rider, reward["id"])
        assert (reply.status_code, reply.json()["code"]) == (409, "reward_unavailable")
    assert (await client.get("/api/v1/me/redemptions", headers=rider.headers)).json() == []


async def test_a_request_is_pending_and_debits_nothing(client, db, clock, people):
    supervisor, _outsider, rider = await people()
    await give_points(db, clock, rider.member_id, 50)
    reward = await new_reward(client, supervisor, cost=30)
    reply = await redeem(client, rider, reward["id"])
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert (body["state"], body["cost"], body["reward_id"], body["member_display_name"]) == (
        "pending", 30, reward["id"], None)
    assert await balance(db, rider.member_id) == 50
    mine = (await client.get("/api/v1/me/redemptions", headers=rider.headers)).json()
    assert [r["id"] for r in mine] == [body["id"]]


# ── deciding ──────────────────────────────────────────────────────────────────────────────────────


async def test_approval_debits_once_with_a_row_outside_caps_and_rankings(client, db, clock, people):
    supervisor, _outsider, rider = await people()
    await give_points(db, clock, rider.member_id, 50)
    reward = await new_reward(client, supervisor, cost=30, stock=2)
    redemption = (await redeem(client, rider, reward["id"])).json()

    pending = (await client.get("/api/v1/redemptions?state=pending", headers=supervisor.headers)).json()
    assert [r["id"] for r in pending] == [redemption["id"]]
    assert pending[0]["member_display_name"] == "测试"

    reply = await client.post(f"/api/v1/redemptions/{redemption['id']}/approve", headers=supervisor.headers)
    assert reply.status_code == 200, reply.text
    assert (reply.json()["state"], reply.json()["decided_at"] is not None) == ("approved", True)
    assert await balance(db, rider.member_id) == 20

    row = await db.fetchrow("SELECT * FROM points_ledger WHERE reason = 'redemption'")
    assert (row["member_id"], row["amount"], row["source_kind"], row["source_id"], row["cycle"]) == (
        rider.member_id, -30, "redemption", redemption["id"], 0)
    assert (row["counts_toward_cap"], row["counts_toward_ranking"]) == (False, False)
    assert (row["created_by"], row["local_day"], row["created_at"]) == (
        supervisor.member_id, local_day(clock.now()), clock.now())
    assert await db.fetchval("SELECT stock FROM rewards WHERE id = $1", reward["id"]) == 1

    # Decided twice: 409, nothing more debited.
    for action, body in (("approve", None), ("decline", {"reason": "again"})):
        reply = await client.post(f"/api/v1/redemptions/{redemption['id']}/{action}", headers=supervisor.headers,
                                  json=body)
        assert (reply.status_code, reply.json()["code"]) == (409, "already_decided")
    assert await balance(db, rider.member_id) == 20
    assert (await client.get("/api/v1/redemptions?state=pending", headers=supervisor.headers)).json() == []
    approved = (await client.get("/api/v1/redemptions?state=approved", headers=supervisor.headers)).json()
    assert [r["id"] for r in approved] == [redemption["id"]]


async def test_approval_rechecks_the_balance(client, db, clock, people):
    supervisor, _outsider, rider = await people()
    await give_points(db, clock, rider.member_id, 30)
    reward = await new_reward(client, supervisor, cost=30)
    first = (await redeem(client, rider, reward["id"])).json()
    second = (await redeem(client, rider, reward["id"])).json()  # both fit the balance on their own
    assert (await client.post(f"/api/v1/redemptions/{first['id']}/approve",
                              headers=supervisor.headers)).status_code == 200
    reply = await client.post(f"/api/v1/redemptions/{second['id']}/approve", headers=supervisor.headers)
    assert (reply.status_code, reply.json()["code"], reply.json()["balance"], reply.json()["cost"]) == (
        409, "insufficient_points", 0, 30)
    assert await balance(db, rider.member_id) == 0
    assert await db.fetchval("SELECT state FROM redemptions WHERE id = $1", second["id"]) == "pending"


async def test_decline_records_the_reason_and_debits_nothing(client, db, clock, people):
    supervisor, _outsider, rider = await people()
    await give_points(db, clock, rider.member_id, 30)
    reward = await new_reward(client, supervisor, cost=30, stock=1)
    redemption = (await redeem(client, rider, reward["id"])).json()
    reply = await client.post(f"/api/v1/redemptions/{redemption['id']}/decline", headers=supervisor.headers,
                              json={"reason": "本月已发完"})
    assert reply.status_code == 200, reply.text
    assert (reply.json()["state"], reply.json()["reason"]) == ("rejected", "本月已发完")
    assert await balance(db, rider.member_id) == 30
    assert await db.fetchval("SELECT stock FROM rewards WHERE id = $1", reward["id"]) == 1
    mine = (await client.get("/api/v1/me/redemptions", headers=rider.headers)).json()
    assert (mine[0]["state"], mine[0]["reason"]) == ("rejected", "本月已发完")
    reply = await client.post(f"/api/v1/redemptions/{redemption['id']}/approve", headers=supervisor.headers)
    assert reply.status_code == 409


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": "x", "extra": 1}])
async def test_a_decline_needs_a_reason(client, db, clock, people, body):
    supervisor, _outsider, rider = await people()
    await give_points(db, clock, rider.member_id, 30)
    reward = await new_reward(client, supervisor, cost=30)
    redemption = (await redeem(client, rider, reward["id"])).json()
    reply = await client.post(f"/api/v1/redemptions/{redemption['id']}/decline", headers=supervisor.headers,
                              json=body)
    assert reply.status_code == 422, reply.text


async def test_a_penalty_below_zero_blocks_redemptions_until_earned_back(client, db, clock, people):
    supervisor, _outsider, rider = await people()
    await give_points(db, clock, rider.member_id, 10)
    cheap = await new_reward(client, supervisor, name_zh="贴纸", cost=1)
    full = await new_reward(client, supervisor, cost=10)
    spent = (await redeem(client, rider, full["id"])).json()
    waiting = (await redeem(client, rider, cheap["id"])).json()
    assert (await client.post(f"/api/v1/redemptions/{spent['id']}/approve",
                              headers=supervisor.headers)).status_code == 200
    assert await balance(db, rider.member_id) == 0

    await penalise(db, clock, rider.member_id, incident_id=4242)  # a later penalty may go below zero
    assert await balance(db, rider.member_id) == -5
    reply = await redeem(client, rider, cheap["id"])
    assert (reply.status_code, reply.json()["code"], reply.json()["balance"]) == (409, "insufficient_points", -5)
    reply = await client.post(f"/api/v1/redemptions/{waiting['id']}/approve", headers=supervisor.headers)
    assert (reply.status_code, reply.json()["code"]) == (409, "insufficient_points")
    assert await balance(db, rider.member_id) == -5

    await give_points(db, clock, rider.member_id, 6)  # earned back
    assert (await client.post(f"/api/v1/redemptions/{waiting['id']}/approve",
                              headers=supervisor.headers)).status_code == 200
    assert await balance(db, rider.member_id) == 0


# ── who may decide ────────────────────────────────────────────────────────────────────────────────


async def test_a_supervisor_of_another_community_sees_nothing_and_gets_404(client, db, clock, people, admin):
    supervisor, outsider, rider = await people()
    await give_points(db, clock, rider.member_id, 30)
    reward = await new_reward(client, supervisor, cost=30)
    redemption = (await redeem(client, rider, reward["id"])).json()

    assert (await client.get("/api/v1/redemptions?state=pending", headers=outsider.headers)).json() == []
    assert (await client.get("/api/v1/redemptions", headers=outsider.headers)).json() == []
    for action, body in (("approve", None), ("decline", {"reason": "no"})):
        reply = await client.post(f"/api/v1/redemptions/{redemption['id']}/{action}", headers=outsider.headers,
                                  json=body)
        assert (reply.status_code, reply.json()["code"]) == (404, "not_found")
    assert await db.fetchval("SELECT state FROM redemptions WHERE id = $1", redemption["id"]) == "pending"

    # The admin sees everyone's; the street supervisor above both communities too.
    assert [r["id"] for r in (await client.get("/api/v1/redemptions?state=pending",
                                               headers=admin.headers)).json()] == [redemption["id"]]
    assert (await client.post("/api/v1/redemptions/999999/approve", headers=admin.headers)).status_code == 404


async def test_a_street_supervisor_decides_for_riders_below(client, db, clock, people, login):
    supervisor, _outsider, rider = await people()
    street = await login("supervisor", "13911110003", ["ZW-ZWZ"])
    await give_points(db, clock, rider.member_id, 30)
    reward = await new_reward(client, supervisor, cost=30)
    redemption = (await redeem(client, rider, reward["id"])).json()
    reply = await client.post(f"/api/v1/redemptions/{redemption['id']}/approve", headers=street.headers)
    assert reply.status_code == 200, reply.text


async def test_a_courier_or_grid_member_cannot_decide(client, db, clock, people, login):
    supervisor, _outsider, rider = await people()
    grid_member = await login("grid_member", "13933330001", [GRID])
    await give_points(db, clock, rider.member_id, 30)
    reward = await new_reward(client, supervisor, cost=30)
    redemption = (await redeem(client, rider, reward["id"])).json()
    for caller in (rider, grid_member):
        assert (await client.post(f"/api/v1/redemptions/{redemption['id']}/approve",
                                  headers=caller.headers)).status_code == 403
        assert (await client.post(f"/api/v1/redemptions/{redemption['id']}/decline", headers=caller.headers,
                                  json={"reason": "x"})).status_code == 403
        assert (await client.get("/api/v1/redemptions", headers=caller.headers)).status_code == 403
    assert (await client.post("/api/v1/redemptions", headers=supervisor.headers,
                              json={"reward_id": reward["id"]})).status_code == 403
    assert (await client.get("/api/v1/redemptions?state=bogus", headers=supervisor.headers)).status_code == 422
    assert await balance(db, rider.member_id) == 30


# ── the races ─────────────────────────────────────────────────────────────────────────────────────


async def _approve_together(db, clock, approver_id: int, redemption_ids: list[int]) -> list[object]:
    """Approve each redemption on its own pool connection, all transactions open before any approves."""
    barrier = asyncio.Barrier(len(redemption_ids))

    async def one(redemption_id: int) -> object:
        async with db.acquire() as conn, conn.transaction():
            await conn.fetchval("SELECT 1")  # the transaction has begun on the server
            await barrier.wait()
            return await redemptions.approve(conn, redemption_id=redemption_id, approver_id=approver_id,
                                             scope=None, now=clock.now())

    return await asyncio.wait_for(
        asyncio.gather(*(one(r) for r in redemption_ids), return_exceptions=True), timeout=20)


async def test_two_approvals_racing_for_one_balance_debit_once(client, db, clock, people, login):
    supervisor, _outsider, _rider = await people()
    a = await new_reward(client, supervisor, name_zh="保温箱", cost=30)
    b = await new_reward(client, supervisor, name_zh="头盔", cost=25)
    for round_ in range(3):  # a fresh rider each round: the interleaving varies, the outcome must not
        rider = await login("courier", f"139222201{round_:02d}", [GRID])
        await give_points(db, clock, rider.member_id, 40)
        ids = [(await redeem(client, rider, reward["id"])).json()["id"] for reward in (a, b)]

        results = await _approve_together(db, clock, supervisor.member_id, ids)
        won = [r for r in results if isinstance(r, db_redemptions.RedemptionRow)]
        refused = [r for r in results if isinstance(r, InsufficientPoints)]
        assert (len(won), len(refused)) == (1, 1), results
        remaining = await balance(db, rider.member_id)
        assert remaining == 40 - won[0].cost >= 0
        assert (refused[0].balance, refused[0].cost) == (remaining, 55 - won[0].cost)
        debits = await db.fetch("SELECT amount FROM points_ledger WHERE reason = 'redemption' AND member_id = $1",
                                rider.member_id)
        assert [d["amount"] for d in debits] == [-won[0].cost]
        states = await db.fetch("SELECT state FROM redemptions WHERE member_id = $1 ORDER BY state", rider.member_id)
        assert [s["state"] for s in states] == ["approved", "pending"]


async def test_two_approvals_racing_for_the_last_unit(client, db, clock, people, login):
    supervisor, _outsider, rider = await people()
    other = await login("courier", "13922220002", [GRID])
    for member_id in (rider.member_id, other.member_id):
        await give_points(db, clock, member_id, 50)
    reward = await new_reward(client, supervisor, cost=30, stock=1)
    ids = [(await redeem(client, caller, reward["id"])).json()["id"] for caller in (rider, other)]

    results = await _approve_together(db, clock, supervisor.member_id, ids)
    won = [r for r in results if isinstance(r, db_redemptions.RedemptionRow)]
    refused = [r for r in results if isinstance(r, RewardUnavailable)]
    assert (len(won), len(refused)) == (1, 1), results
    assert await db.fetchval("SELECT stock FROM rewards WHERE id = $1", reward["id"]) == 0
    debits = await db.fetch("SELECT member_id, amount FROM points_ledger WHERE reason = 'redemption'")
    assert [(d["member_id"], d["amount"]) for d in debits] == [(won[0].member_id, -30)]
    loser = next(r for r in ids if r != won[0].id)
    assert await db.fetchval("SELECT state FROM redemptions WHERE id = $1", loser) == "pending"
    assert sorted([await balance(db, rider.member_id), await balance(db, other.member_id)]) == [20, 50]


async def test_the_schema_still_publishes_with_the_controller(client):
    reply = await client.get("/schema/openapi.json")
    assert reply.status_code == 200
    assert "/api/v1/redemptions/{redemption_id}/approve" in reply.json()["paths"]
