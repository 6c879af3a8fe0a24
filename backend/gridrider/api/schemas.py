"""Response Structs shared by several controllers."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar.params import PathParameter

from gridrider.db.members import MemberRow

# Every row id in a URL: a PostgreSQL bigint, so a 30-digit id is a 400 at the door, not a 500 in asyncpg.
RowId = Annotated[int, PathParameter(ge=1, le=2**63 - 1)]


class MemberOut(msgspec.Struct, frozen=True):
    id: int
    role: str
    display_name: str | None
    pseudonym: str
    phone: str | None
    platform: str | None
    status: str
    area_codes: list[str]
    privacy_accepted: bool

    @classmethod
    def of(cls, member: MemberRow, *, phone: str | None) -> MemberOut:
        return cls(
            id=member.id, role=member.role, display_name=member.display_name, pseudonym=member.pseudonym,
            phone=phone, platform=member.platform, status=member.status, area_codes=list(member.area_codes),
            privacy_accepted=member.privacy_accepted_at is not None,
        )
