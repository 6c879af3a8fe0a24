"""Who may enrol whom, and how people appear to each other (pseudonyms, masked phones)."""

from __future__ import annotations

import re
import secrets

ROLES = ("courier", "grid_member", "supervisor", "admin")
PLATFORMS = ("meituan", "eleme", "sf", "jd", "other")

# Which roles each role may enrol. Admins enrol supervisors (and may fill in for them); supervisors
# enrol the people who work inside their subtree. Nobody enrols an admin through the API.
ENROLLABLE_ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset({"supervisor", "grid_member", "courier"}),
    "supervisor": frozenset({"grid_member", "courier"}),
}
# Area levels a role's member may be attached to.
AREA_LEVELS_FOR_ROLE: dict[str, frozenset[str]] = {
    "supervisor": frozenset({"county", "street", "community"}),
    "grid_member": frozenset({"grid"}),
    "courier": frozenset({"county", "street", "community", "grid"}),
    "admin": frozenset(),  # admins see everything and belong to no area (enrolled only by the server CLI)
}

_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")


def normalise_phone(raw: str) -> str | None:
    """A mainland mobile number as 11 digits, or None: '+86 138-0013-8000' → '13800138000'."""
    digits = re.sub(r"[\s\-()]", "", raw or "")
    for prefix in ("+86", "0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            digits = digits[len(prefix):]
            break
    return digits if _MOBILE.match(digits) else None


def mask_phone(phone: str | None) -> str | None:
    """138****5678 — what grid members and exports (for non-supervisors) show."""
    if not phone:
        return None
    return f"{phone[:3]}****{phone[-4:]}" if len(phone) >= 7 else "****"


def new_pseudonym(role: str) -> str:
    """A stable public name that says nothing about the person: 骑手-7F3A9C."""
    prefix = {"courier": "骑手", "grid_member": "网格员", "supervisor": "管理员", "admin": "系统"}[role]
    return f"{prefix}-{secrets.token_hex(3).upper()}"


def may_enrol(caller_role: str, target_role: str) -> bool:
    return target_role in ENROLLABLE_ROLES.get(caller_role, frozenset())


def within_subtrees(path: str, subtree_paths: list[str] | None) -> bool:
    """Whether an area (by its materialised path) lies inside any of the subtrees; None means everywhere."""
    return subtree_paths is None or any(path.startswith(root) for root in subtree_paths)
