"""SQL for `rewards` and `redemptions` (DESIGN.md §2d: redemption checks and debits in one transaction).

Times come from the caller (the injectable clock), never from SQL `now()`. Supervisor scoping is a
list of materialised area paths (`path LIKE scope || '%'`); None means no restriction (admins).
"""

from __future__ import annotations

import datetime as dt

import msgspec

from gridrider.db.pool import Connection, Pool

# ── rewards ───────────────────────────────────────────────────────────────────────────────────────


class RewardRow(msgspec.Struct, frozen=True):
    id: int
    name_zh: str
    name_en: str | None
    cost: int
    stock: int | None
    enabled: bool
    created_at: dt.datetime


_REWARD_COLUMNS = "id, name_zh, name_en, cost, stock, enabled, created_at"

INSERT_REWARD_SQL = f"""
INSERT INTO rewards (name_zh, name_en, cost, stock, enabled, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING {_REWARD_COLUMNS}
"""
REWARD_BY_ID_SQL = f"SELECT {_REWARD_COLUMNS} FROM rewards WHERE id = $1"
REWARD_FOR_UPDATE_SQL = f"SELECT {_REWARD_COLUMNS} FROM rewards WHERE id = $1 FOR UPDATE"
UPDATE_REWARD_SQL = f"""
UPDATE rewards SET name_zh = $2, name_en = $3, cost = $4, stock = $5, enabled = $6
WHERE id = $1
RETURNING {_REWARD_COLUMNS}
"""
LIST_REWARDS_SQL = f"""
SELECT {_REWARD_COLUMNS} FROM rewards
WHERE enabled OR NOT $1::boolean
ORDER BY cost, id
"""
# One unit leaves the stock; unlimited (NULL) stays NULL. The `stock > 0` in the WHERE is what makes
# two approvals racing for the last unit safe: the second re-checks it on the updated row and matches
# nothing.
TAKE_ONE_SQL = """
UPDATE rewards SET stock = CASE WHEN stock IS NULL THEN NULL ELSE stock - 1 END
WHERE id = $1 AND enabled AND (stock IS NULL OR stock > 0)
RETURNING id
"""


async def insert_reward(conn: Connection, *, name_zh: str, name_en: str | None, cost: int, stock: int | None,
                        enabled: bool, now: dt.datetime) -> RewardRow:
    return RewardRow(**await conn.fetchrow(INSERT_REWARD_SQL, name_zh, name_en, cost, stock, enabled, now))


async def reward_by_id(conn: Connection | Pool, reward_id: int) -> RewardRow | None:
    row = await conn.fetchrow(REWARD_BY_ID_SQL, reward_id)
    return RewardRow(**row) if row else None


async def reward_for_update(conn: Connection, reward_id: int) -> RewardRow | None:
    row = await conn.fetchrow(REWARD_FOR_UPDATE_SQL, reward_id)
    return RewardRow(**row) if row else None


async def update_reward(conn: Connection, reward: RewardRow) -> RewardRow:
    row = await conn.fetchrow(UPDATE_REWARD_SQL, reward.id, reward.name_zh, reward.name_en, reward.cost,
                              reward.stock, reward.enabled)
    return RewardRow(**row)


async def list_rewards(conn: Connection | Pool, *, enabled_only: bool) -> list[RewardRow]:
    return [RewardRow(**r) for r in await conn.fetch(LIST_REWARDS_SQL, enabled_only)]


async def take_one(conn: Connection, reward_id: int) -> bool:
    """Take one unit of an enabled reward; False when it is disabled or none is left."""
    return await conn.fetchval(TAKE_ONE_SQL, reward_id) is not None


# ── redemptions ───────────────────────────────────────────────────────────────────────────────────


class RedemptionRow(msgspec.Struct, frozen=True):
    id: int
    member_id: int
    member_pseudonym: str
    member_display_name: str | None
    reward_id: int
    reward_name_zh: str
    reward_name_en: str | None
    cost: int
    state: str
    decided_by: int | None
    decided_at: dt.datetime | None
    reason: str | None
    created_at: dt.datetime


_REDEMPTION_SELECT = """
SELECT d.id, d.member_id, m.pseudonym AS member_pseudonym, m.display_name AS member_display_name,
       d.reward_id, w.name_zh AS reward_name_zh, w.name_en AS reward_name_en, d.cost, d.state,
       d.decided_by, d.decided_at, d.reason, d.created_at
FROM redemptions d
JOIN members m ON m.id = d.member_id
JOIN rewards w ON w.id = d.reward_id
"""
# The rider has an area inside one of the caller's subtrees ($N NULL = everyone, for admins).
_IN_SCOPE = """
($SCOPE::text[] IS NULL OR EXISTS (
    SELECT 1 FROM member_areas ma JOIN areas a ON a.id = ma.area_id
    WHERE ma.member_id = d.member_id
      AND EXISTS (SELECT 1 FROM unnest($SCOPE::text[]) AS s(path) WHERE a.path LIKE s.path || '%')))
"""

INSERT_REDEMPTION_SQL = """
INSERT INTO redemptions (member_id, reward_id, cost, state, created_at)
VALUES ($1, $2, $3, 'pending', $4)
RETURNING id
"""
REDEMPTION_BY_ID_SQL = f"{_REDEMPTION_SELECT} WHERE d.id = $1"
REDEMPTION_IN_SCOPE_SQL = f"{_REDEMPTION_SELECT} WHERE d.id = $1 AND {_IN_SCOPE.replace('$SCOPE', '$2')}"
LOCK_REDEMPTION_SQL = "SELECT state FROM redemptions WHERE id = $1 FOR UPDATE"
MY_REDEMPTIONS_SQL = f"{_REDEMPTION_SELECT} WHERE d.member_id = $1 ORDER BY d.id DESC LIMIT $2"
SCOPED_REDEMPTIONS_SQL = f"""
{_REDEMPTION_SELECT}
WHERE ($1::text IS NULL OR d.state = $1) AND {_IN_SCOPE.replace('$SCOPE', '$2')}
ORDER BY d.created_at, d.id
LIMIT $3
"""
DECIDE_SQL = """
UPDATE redemptions SET state = $2, decided_by = $3, decided_at = $4, reason = $5
WHERE id = $1 AND state = 'pending'
RETURNING id
"""


async def insert_redemption(conn: Connection, *, member_id: int, reward_id: int, cost: int,
                            now: dt.datetime) -> int:
    return await conn.fetchval(INSERT_REDEMPTION_SQL, member_id, reward_id, cost, now)


async def redemption_by_id(conn: Connection | Pool, redemption_id: int) -> RedemptionRow | None:
    row = await conn.fetchrow(REDEMPTION_BY_ID_SQL, redemption_id)
    return RedemptionRow(**row) if row else None


async def redemption_in_scope(conn: Connection | Pool, redemption_id: int,
                              scope: list[str] | None) -> RedemptionRow | None:
    row = await conn.fetchrow(REDEMPTION_IN_SCOPE_SQL, redemption_id, scope)
    return RedemptionRow(**row) if row else None


async def lock_redemption(conn: Connection, redemption_id: int) -> str | None:
    """Row-lock the redemption for the rest of the transaction; its current state."""
    return await conn.fetchval(LOCK_REDEMPTION_SQL, redemption_id)


async def my_redemptions(conn: Connection | Pool, member_id: int, limit: int) -> list[RedemptionRow]:
    return [RedemptionRow(**r) for r in await conn.fetch(MY_REDEMPTIONS_SQL, member_id, limit)]


async def scoped_redemptions(conn: Connection | Pool, *, state: str | None, scope: list[str] | None,
                             limit: int) -> list[RedemptionRow]:
    return [RedemptionRow(**r) for r in await conn.fetch(SCOPED_REDEMPTIONS_SQL, state, scope, limit)]


async def decide(conn: Connection, redemption_id: int, *, state: str, decided_by: int, now: dt.datetime,
                 reason: str | None) -> bool:
    """Move a pending redemption to `state`; False when it was no longer pending."""
    return await conn.fetchval(DECIDE_SQL, redemption_id, state, decided_by, now, reason) is not None


# The redemption's debit: created_by is the approving supervisor (a manual row).
INSERT_DEBIT_SQL = """
INSERT INTO points_ledger (member_id, reason, amount, source_kind, source_id, cycle, counts_toward_cap,
                           counts_toward_ranking, local_day, note, created_by, created_at)
VALUES ($1, 'redemption', $2, 'redemption', $3, 0, $4, $5, $6, $7, $8, $9)
ON CONFLICT ON CONSTRAINT points_ledger_once_per_source DO NOTHING
RETURNING id
"""


async def insert_debit(conn: Connection, *, member_id: int, amount: int, redemption_id: int, counts_toward_cap: bool,
                       counts_toward_ranking: bool, local_day: dt.date, note: str | None, created_by: int,
                       now: dt.datetime) -> int | None:
    """The new ledger row's id, or None when this redemption was already debited."""
    return await conn.fetchval(INSERT_DEBIT_SQL, member_id, amount, redemption_id, counts_toward_cap,
                               counts_toward_ranking, local_day, note, created_by, now)
