"""The default hazard categories (DESIGN.md §2a); an admin may edit them later in the database."""

from __future__ import annotations

import datetime as dt

import msgspec


class Category(msgspec.Struct, frozen=True):
    code: str
    name_zh: str
    name_en: str
    icon: str
    severity: str  # low | medium | high | critical
    life_safety: bool
    merge_radius_m: int
    merge_window: dt.timedelta
    weight: float
    sort_order: int
    enabled: bool = True


def _c(order: int, code: str, zh: str, en: str, icon: str, severity: str, life: bool, radius: int,
       window: dt.timedelta, weight: float) -> Category:
    return Category(code, zh, en, icon, severity, life, radius, window, weight, order)


H, D = dt.timedelta(hours=1), dt.timedelta(days=1)

# Life-safety first: the PWA shows them in red at the top of the category grid.
# One row per category reads as the table in DESIGN.md §2a, so these lines may run long.
DEFAULT_CATEGORIES: tuple[Category, ...] = (
    _c(10, "missing_manhole_cover", "井盖缺失或破损", "missing or broken manhole cover", "manhole", "critical", True, 25, 30 * D, 2.0),
    _c(20, "road_collapse", "路面塌陷", "road collapse", "road-collapse", "critical", True, 50, 7 * D, 2.0),
    _c(30, "flooding", "道路积水", "flooding in a low-lying spot", "flood", "critical", True, 150, 48 * H, 1.5),
    _c(40, "exposed_live_wire", "电线裸露或断落", "exposed or fallen live wire", "live-wire", "critical", True, 30, 72 * H, 2.0),
    _c(50, "flying_wire_charging", "飞线充电", "e-bike charging cord from a window", "charging-cord", "high", False, 30, 7 * D, 1.5),
    _c(60, "blocked_fire_lane", "消防通道堵塞", "blocked fire lane", "fire-lane", "high", False, 50, 72 * H, 1.2),
    _c(70, "falling_object_risk", "高空坠物隐患", "falling-object risk", "falling-object", "high", False, 30, 7 * D, 1.5),
    _c(80, "damaged_pole", "电线杆损坏", "damaged pole", "pole", "medium", False, 30, 14 * D, 1.0),
    _c(90, "damaged_charging_pile", "充电桩损坏", "damaged charging pile", "charging-pile", "medium", False, 30, 14 * D, 1.0),
    _c(100, "streetlight_out", "路灯不亮", "street light out", "streetlight", "low", False, 30, 14 * D, 0.6),
    _c(110, "garbage_pileup", "垃圾堆积", "piled garbage", "garbage", "low", False, 50, 72 * H, 0.8),
    _c(120, "illegal_structure", "违章搭建", "illegal structure", "structure", "low", False, 50, 30 * D, 0.8),
    _c(130, "other", "其他隐患", "other hazard", "other", "low", False, 30, 72 * H, 0.5),
)
