"""Rewards and redemptions (DESIGN.md §2d): a redemption checks and debits in one transaction.

Choices made here:

- A rider asks (`request`): the reward must be enabled with stock left and the balance must cover
  the cost *now*; the cost is copied onto the redemption. Nothing is debited or reserved yet.
- A supervisor of the rider's area approves (`approve`), in ONE transaction: the member's points
  advisory lock (the same one the points code takes before writing a member's rows, so an award and
  a redemption of one member never interleave), then the redemption's row lock (must still be
  pending), the balance recomputed under that lock (refused below the cost — so a redemption never
  takes it below zero), one unit taken from the stock (`stock > 0` in the WHERE), the `redemption`
  ledger row (−cost, cycle 0, neither cap nor ranking), and the state `approved`.
- Declining (`decline`) records the reason; the table's state for it is `rejected`. Nothing was
  debited, so nothing is given back.
- A later penalty may take a balance below zero; then every request and approval is refused with
  `insufficient_points` until it is earned back (cost > 0 > balance).
"""

from __future__ import annotations

import datetime as dt

from gridrider.clock import local_day
from gridrider.db import points as db_points
from gridrider.db import redemptions as db
from gridrider.db.pool import Connection
from gridrider.domain.points import REASON_FLAGS
from gridrider.errors import Conflict, NotFound

STATES = ("pending", "approved", "rejected", "fulfilled")

class RedemptionRefused(Conflict):
    """A 409 whose `detail` is shown to the caller (it carries no secret)."""


class InsufficientPoints(RedemptionRefused):
    code = "insufficient_points"

    def __init__(self, *, balance: int, cost: int) -> None:
        super().__init__(f"balance {balance} is below the cost {cost}")
        self.balance = balance
        self.cost = cost


class RewardUnavailable(RedemptionRefused):
    code = "reward_unavailable"


class AlreadyDecided(RedemptionRefused):
    code = "already_decided"


async def request(conn: Connection, *, member_id: int, reward_id: int, now: dt.datetime) -> int:
    """A pending redemption of the reward by the member; its id."""
    reward = await db.reward_by_id(conn, reward_id)
    if reward is None:
        raise NotFound()
    if not reward.enabled:
        raise RewardUnavailable("the reward is disabled")
    if reward.stock is not None and reward.stock <= 0:
        raise RewardUnavailable("the reward is out of stock")
    balance = await db_points.balance(conn, member_id)
    if balance < reward.cost:
        raise InsufficientPoints(balance=balance, cost=reward.cost)
    return await db.insert_redemption(conn, member_id=member_id, reward_id=reward.id, cost=reward.cost, now=now)


async def _pending_in_scope(conn: Connection, redemption_id: int, scope: list[str] | None) -> db.RedemptionRow:
    found = await db.redemption_in_scope(conn, redemption_id, scope)
    if found is None:
        raise NotFound()
    return found


async def approve(conn: Connection, *, redemption_id: int, approver_id: int, scope: list[str] | None,
                  now: dt.datetime) -> db.RedemptionRow:
    """Check and debit in the caller's transaction (see the module docstring); the approved redemption."""
    found = await _pending_in_scope(conn, redemption_id, scope)
    await db_points.lock_members(conn, [found.member_id])
    state = await db.lock_redemption(conn, redemption_id)
    if state != "pending":
        raise AlreadyDecided(f"the redemption is {state}")
    balance = await db_points.balance(conn, found.member_id)
    if balance < found.cost:
        raise InsufficientPoints(balance=balance, cost=found.cost)
    if not await db.take_one(conn, found.reward_id):
        raise RewardUnavailable("the reward is disabled or out of stock")
    cap, ranking = REASON_FLAGS["redemption"]
    debit = await db.insert_debit(conn, member_id=found.member_id, amount=-found.cost, redemption_id=redemption_id,
                                  counts_toward_cap=cap, counts_toward_ranking=ranking, local_day=local_day(now),
                                  note=None, created_by=approver_id, now=now)
    if debit is None or not await db.decide(conn, redemption_id, state="approved", decided_by=approver_id,
                                            now=now, reason=None):
        raise AlreadyDecided("the redemption was already debited")
    done = await db.redemption_by_id(conn, redemption_id)
    assert done is not None
    return done


async def decline(conn: Connection, *, redemption_id: int, decider_id: int, scope: list[str] | None, reason: str,
                  now: dt.datetime) -> db.RedemptionRow:
    """Refuse a pending redemption with a reason shown to the rider (state `rejected`)."""
    await _pending_in_scope(conn, redemption_id, scope)
    state = await db.lock_redemption(conn, redemption_id)
    if state != "pending" or not await db.decide(conn, redemption_id, state="rejected", decided_by=decider_id,
                                                 now=now, reason=reason):
        raise AlreadyDecided(f"the redemption is {state}")
    done = await db.redemption_by_id(conn, redemption_id)
    assert done is not None
    return done
