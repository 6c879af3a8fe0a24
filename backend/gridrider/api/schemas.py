"""Response Structs shared by several controllers."""

from __future__ import annotations

import msgspec

from gridrider.db.members import MemberRow


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
