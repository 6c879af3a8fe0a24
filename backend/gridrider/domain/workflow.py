"""The incident state machine (DESIGN.md §2b): one table of who may do what from which state.

Code (api/incidents.py, domain/incident_actions.py) and tests both read `TRANSITIONS`. The caller's
*capacity* comes from their role and their relation to the incident, and is checked in SQL together
with the state in the same statement that changes the row:

- `grid` — a grid member whose member_areas include the incident's grid;
- `supervisor` — a supervisor (or admin) whose subtree holds the incident's area;
- `first_reporter` — the courier fixed as the incident's first reporter.
"""

from __future__ import annotations

import dataclasses

OPEN_STATES = frozenset({"unrouted", "dispatched", "accepted"})
REJECT_REASONS = ("not_a_hazard", "cannot_locate", "out_of_scope")
MAX_GRID_TRANSFERS_PER_CYCLE = 2


@dataclasses.dataclass(frozen=True)
class Transition:
    # capacity → the states it may act from
    allowed_from: dict[str, frozenset[str]]
    to: str | None  # None: the state does not change


def _t(to: str | None, **allowed_from: set[str]) -> Transition:
    return Transition({capacity: frozenset(states) for capacity, states in allowed_from.items()}, to)


TRANSITIONS: dict[str, Transition] = {
    "dispatch": _t("dispatched", supervisor={"unrouted"}),
    "accept": _t("accepted", grid={"dispatched"}),
    "transfer": _t("dispatched", grid={"dispatched"}, supervisor={"dispatched"}),
    "request_complex": _t(None, grid={"accepted"}),
    "approve_complex": _t(None, supervisor={"accepted"}),
    "decline_complex": _t(None, supervisor={"accepted"}),
    "resolve": _t("resolved", grid={"accepted"}),
    "reject": _t("rejected", grid={"dispatched", "accepted"}, supervisor={"unrouted", "dispatched", "accepted"}),
    "merge": _t("merged", grid={"dispatched", "accepted"}, supervisor={"unrouted", "dispatched", "accepted"}),
    "reopen": _t("dispatched", supervisor={"resolved", "closed"}),
    "appeal": _t(None, first_reporter={"rejected"}),
    "uphold_appeal": _t("dispatched", supervisor={"rejected"}),
    "dismiss_appeal": _t(None, supervisor={"rejected"}),
}
ACTIONS = tuple(TRANSITIONS)
# What happens without anyone acting: `close` 7 days after resolution, `reopen` on two not_fixed answers.
AUTOMATIC = {"close": ("resolved", "closed"), "reopen": ("resolved", "dispatched")}


def capacities_of(role: str) -> tuple[str, ...]:
    """Capacities a member of this role can hold (which one applies is decided per incident, in SQL)."""
    return {"grid_member": ("grid",), "supervisor": ("supervisor",), "admin": ("supervisor",),
            "courier": ("first_reporter",)}.get(role, ())


def allowed_states(action: str, role: str) -> dict[str, frozenset[str]]:
    """capacity → states this role may take `action` from (empty: the role can never take it)."""
    transition = TRANSITIONS[action]
    return {c: transition.allowed_from[c] for c in capacities_of(role) if c in transition.allowed_from}


STATES_ALL = ("unrouted", "dispatched", "accepted", "resolved", "closed", "rejected", "merged")
