"""`gridrider demo`: seed Zhangwu town into an EMPTY database; never touches one that has data."""

from __future__ import annotations

from gridrider.config import Settings
from gridrider.db import areas as db_areas
from gridrider.db import members as db_members
from gridrider.db.pool import Connection
from gridrider.domain import geo
from gridrider.domain.demo_geography import zhangwu_demo_areas

# (role, display name, phone, platform, area codes)
DEMO_MEMBERS: tuple[tuple[str, str, str, str | None, tuple[str, ...]], ...] = (
    ("admin", "系统管理员", "13800000001", None, ()),
    ("supervisor", "县应急办 王主任", "13800000010", None, ("ZW",)),
    ("supervisor", "彰武镇 李站长", "13800000011", None, ("ZW-ZWZ",)),
    ("supervisor", "城南社区 赵书记", "13800000012", None, ("ZW-ZWZ-C02",)),
    ("grid_member", "网格员 刘敏", "13800000020", None, ("ZW-ZWZ-C02-G01", "ZW-ZWZ-C02-G02")),
    ("grid_member", "网格员 陈强", "13800000021", None, ("ZW-ZWZ-C02-G03",)),
    ("grid_member", "网格员 孙丽", "13800000022", None, ("ZW-ZWZ-C07-G08", "ZW-ZWZ-C07-G09")),
    ("grid_member", "网格员 周涛", "13800000023", None, ("ZW-ZWZ-C12-G02", "ZW-ZWZ-C12-G03")),
    ("courier", "骑手 张伟", "13900000001", "meituan", ("ZW-ZWZ",)),
    ("courier", "骑手 王芳", "13900000002", "eleme", ("ZW-ZWZ",)),
    ("courier", "骑手 李娜", "13900000003", "sf", ("ZW-ZWZ",)),
    ("courier", "骑手 刘洋", "13900000004", "jd", ("ZW-ZWZ",)),
)
PSEUDONYM_PREFIX = {"admin": "管理", "supervisor": "主管", "grid_member": "网格", "courier": "骑手"}


async def seed_demo(conn: Connection, settings: Settings) -> str:
    async with conn.transaction():
        # Serialise concurrent seeders; the emptiness check below then sees the winner's rows.
        await conn.execute("LOCK TABLE areas IN EXCLUSIVE MODE")
        if await db_areas.count_areas(conn) or await db_members.count_members(conn):
            return "demo: the database already has areas or members; nothing seeded"
        area_ids: dict[str, int] = {}
        for area in zhangwu_demo_areas():
            shape = geo.geometry_of(area.polygon)
            area_ids[area.code] = await db_areas.insert_area(
                conn, code=area.code, level=area.level,
                parent_id=area_ids[area.parent_code] if area.parent_code else None,
                name_zh=area.name_zh, name_en=area.name_en, polygon=area.polygon,
                bbox=geo.bbox_of(shape), area_m2=geo.area_m2(shape),
            )
        for index, (role, name, phone, platform, codes) in enumerate(DEMO_MEMBERS, start=1):
            member_id = await db_members.insert_member(
                conn, role=role, display_name=name, pseudonym=f"{PSEUDONYM_PREFIX[role]}{index:04d}",
                phone=phone, platform=platform,
            )
            for code in codes:
                await db_areas.add_member_area(conn, member_id, area_ids[code])
    grids = sum(1 for code in area_ids if "-G" in code)
    return (f"demo: seeded {len(area_ids)} areas ({grids} grids) of 彰武镇 and {len(DEMO_MEMBERS)} members; "
            f"open {settings.public_url}")
