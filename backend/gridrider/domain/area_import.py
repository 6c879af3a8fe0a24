"""Checking a GeoJSON file of the city's areas before it replaces what the database holds (issue 8).

The file is a FeatureCollection; each Feature describes one area:

    properties.code     text, required: ^[A-Za-z0-9][A-Za-z0-9.-]*$, at most 64 characters (the areas.code
                        CHECK: codes build the LIKE-matched path). The identity of the area: a code already
                        in the database updates that area in place, a new one creates an area.
    properties.level    required: county | street | community | grid.
    properties.parent   the parent's code, in the file or already in the database; required except for a
                        county, which has none. The parent must be on a higher level (not necessarily the
                        next one: a grid may sit directly under a street).
    properties.name_zh  required, 1–100 characters.
    properties.name_en  optional, 1–100 characters.
    geometry            Polygon or MultiPolygon in WGS-84 [lon, lat] (a third number, altitude, is dropped);
                        null is allowed for every level but grid, which is what reports are routed to.
    Other properties (GIS exports carry OBJECTID, Shape_Area…) are ignored.

A feature states the whole area: an absent name_en or a null geometry clears the stored one. Areas in
the database that the file does not mention are left alone, never deleted.

Errors (the import is refused): malformed features, bad or duplicate codes, unknown levels, missing
names, orphan parents, a parent not above its child, an existing area changing level, an area with
children changing parent (its children's paths would go stale), malformed coordinates, coordinates out
of range, rings that are too short, unclosed or self-intersecting.

Warnings (reported; refused only when the caller asks for strict): grids overlapping each other by
more than OVERLAP_TOLERANCE_M2 (routing sends a point in the overlap to the smaller grid), and pieces of
a parent's polygon that none of its child grids covers, larger than GAP_TOLERANCE_M2 (a point there goes
to the nearest grid within 30 m, or stays unrouted). Only grids and parents the file touches are
checked, so a defect already in the database does not block an unrelated import.

Everything here is pure: the caller passes the database's areas in and writes the plan out.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Literal

import msgspec
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from gridrider.domain import geo
from gridrider.errors import MESSAGES, DomainError, FieldError

LEVELS = ("county", "street", "community", "grid")
LEVEL_RANK = {level: rank for rank, level in enumerate(LEVELS)}
CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")  # the areas.code CHECK
MAX_CODE_LENGTH = 64  # what the /api/v1/areas/{code}/… routes accept
MAX_NAME_LENGTH = 100
# Hand-drawn neighbours never share edges exactly; a square metre is far below anything that changes
# where a report goes, and far above floating-point noise at six decimals (~0.1 m).
OVERLAP_TOLERANCE_M2 = 1.0
GAP_TOLERANCE_M2 = 1.0
# A file that is wrong everywhere (say, lat and lon swapped) would otherwise give a report as big as itself.
MAX_ISSUES = 1000

Severity = Literal["error", "warning"]
Action = Literal["created", "updated", "unchanged"]

_REASON_POINT = re.compile(r"\[(-?[0-9.eE+-]+) (-?[0-9.eE+-]+)\]")


class AreaFileInvalid(DomainError):
    """Not a FeatureCollection at all: nothing to report on feature by feature."""

    status, code = 422, "areas_file_invalid"


class AreaImportConflict(DomainError):
    """The database refused a write the checks let through; the whole import is rolled back."""

    status, code = 409, "areas_import_conflict"


class ExistingArea(msgspec.Struct, frozen=True):
    """An area as the database holds it, with what an import needs to compare and to keep the tree sound."""

    id: int
    code: str
    level: str
    parent_code: str | None
    name_zh: str
    name_en: str | None
    polygon: dict | None
    has_children: bool


class AreaRecord(msgspec.Struct, frozen=True):
    """One area as it will be written: created, or updated in place."""

    code: str
    level: str
    parent_code: str | None
    name_zh: str
    name_en: str | None
    polygon: dict | None
    bbox: list[float] | None
    area_m2: float | None
    action: Action


class AreaChange(msgspec.Struct, frozen=True):
    code: str
    level: str
    action: Action
    changed: list[str] = []  # updated: which of parent, name_zh, name_en, polygon


class ImportIssue(msgspec.Struct, frozen=True, omit_defaults=True):
    severity: Severity
    code: str
    message: str
    area_code: str | None = None
    feature: int | None = None  # index in `features`
    field: str | None = None  # inside the feature: properties.parent, geometry.coordinates[0][3]…
    related_code: str | None = None  # the other grid of an overlap, the parent that is missing…
    area_m2: float | None = None  # size of an overlap or a gap
    location: list[float] | None = None  # [lon, lat] of a point in the problem

    @property
    def path(self) -> str:
        """Where in the file, as one field name for problem+json."""
        if self.feature is None:
            return "features"
        return f"features[{self.feature}]" + (f".{self.field}" if self.field else "")


class AreaImportReport(msgspec.Struct, frozen=True):
    applied: bool  # written to the database
    refused: bool  # errors, or warnings under strict
    dry_run: bool
    strict: bool
    features: int
    created: int
    updated: int
    unchanged: int
    untouched: int  # areas in the database that the file does not mention: left alone
    errors: int
    warnings: int
    areas: list[AreaChange]
    issues: list[ImportIssue]
    issues_omitted: int = 0

    def in_language(self, lang: str) -> AreaImportReport:
        index = 1 if lang == "en" else 0
        issues = [msgspec.structs.replace(i, message=MESSAGES[i.code][index]) for i in self.issues]
        return msgspec.structs.replace(self, issues=issues)

    def blocking(self) -> list[ImportIssue]:
        """The issues that refused the import."""
        return [i for i in self.issues if i.severity == "error" or self.strict]

    def field_errors(self, lang: str) -> list[FieldError]:
        index = 1 if lang == "en" else 0
        return [FieldError(i.path, i.code, MESSAGES[i.code][index]) for i in self.blocking()]


class ImportPlan(msgspec.Struct, frozen=True):
    report: AreaImportReport
    writes: list[AreaRecord]  # parents before children; empty when refused


# ── the file ─────────────────────────────────────────────────────────────────────────────────────


def decode_feature_collection(raw: bytes) -> list[Any]:
    """The features of a GeoJSON FeatureCollection; each is checked later, on its own."""
    # Desktop GIS tools on Windows like to write a byte-order mark.
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    try:
        doc = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise AreaFileInvalid(str(exc), errors=[FieldError("body", "invalid_json", "文件不是有效的 JSON。")]) from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise AreaFileInvalid(errors=[FieldError("type", "invalid", "文件必须是 GeoJSON FeatureCollection。")])
    features = doc.get("features")
    if not isinstance(features, list) or not features:
        raise AreaFileInvalid(errors=[FieldError("features", "invalid", "features 必须是非空数组。")])
    return features


# ── one feature ──────────────────────────────────────────────────────────────────────────────────


class _Issues:
    def __init__(self) -> None:
        self.items: list[ImportIssue] = []

    def add(self, severity: Severity, code: str, *, feature: int | None = None, area_code: str | None = None,
            field: str | None = None, related_code: str | None = None, area_m2: float | None = None,
            location: list[float] | None = None) -> None:
        self.items.append(ImportIssue(
            severity=severity, code=code, message=MESSAGES[code][0], area_code=area_code, feature=feature,
            field=field, related_code=related_code,
            area_m2=None if area_m2 is None else round(area_m2, 1), location=location,
        ))


class _Feature(msgspec.Struct):
    index: int
    code: str
    level: str
    parent_code: str | None
    name_zh: str | None
    name_en: str | None
    polygon: dict | None  # normalised: type and 2-D float coordinates only
    geometry_ok: bool  # False: the geometry is unusable, so it takes part in no geometric check


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _name(value: Any, *, required: bool) -> tuple[str | None, bool]:
    """(the name, whether it is acceptable)."""
    if value is None:
        return None, not required
    if not isinstance(value, str):
        return None, False
    value = value.strip()
    ok = 0 < len(value) <= MAX_NAME_LENGTH and not any(ord(ch) < 32 or ord(ch) == 127 for ch in value)
    return value, ok


def _read_ring(ring: Any, where: str, issues: _Issues, feature: int, code: str | None) -> list[list[float]] | None:
    """A ring's positions as [lon, lat] floats, or None after reporting why it cannot be one."""
    def report(issue: str, field: str = where) -> None:
        issues.add("error", issue, feature=feature, area_code=code, field=field)

    if not isinstance(ring, list):
        report("area_coordinates_invalid")
        return None
    positions: list[list[float]] = []
    for k, position in enumerate(ring):
        if (not isinstance(position, list) or not 2 <= len(position) <= 3
                or not all(_is_number(v) and math.isfinite(v) for v in position)):
            report("area_coordinates_invalid", f"{where}[{k}]")
            return None
        lon, lat = float(position[0]), float(position[1])
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
            report("area_coordinate_out_of_range", f"{where}[{k}]")
            return None
        positions.append([lon, lat])
    if len(positions) < 4:
        report("area_ring_too_short")
        return None
    if positions[0] != positions[-1]:
        report("area_ring_not_closed")
        return None
    return positions


def _read_polygon(rings: Any, where: str, issues: _Issues, feature: int, code: str | None) -> list | None:
    if not isinstance(rings, list) or not rings:
        issues.add("error", "area_coordinates_invalid", feature=feature, area_code=code, field=where)
        return None
    read = [_read_ring(ring, f"{where}[{r}]", issues, feature, code) for r, ring in enumerate(rings)]
    return None if any(r is None for r in read) else read


def _read_geometry(raw: Any, level: str | None, issues: _Issues, feature: int,
                   code: str | None) -> tuple[dict | None, bool]:
    """(normalised GeoJSON geometry or None, whether it is usable)."""
    if raw is None:
        if level == "grid":
            issues.add("error", "area_geometry_required", feature=feature, area_code=code, field="geometry")
            return None, False
        return None, True
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind not in ("Polygon", "MultiPolygon"):
        issues.add("error", "area_geometry_type", feature=feature, area_code=code, field="geometry.type")
        return None, False
    coordinates = raw.get("coordinates")
    where = "geometry.coordinates"
    if kind == "Polygon":
        read = _read_polygon(coordinates, where, issues, feature, code)
    elif not isinstance(coordinates, list) or not coordinates:
        issues.add("error", "area_coordinates_invalid", feature=feature, area_code=code, field=where)
        read = None
    else:
        parts = [_read_polygon(p, f"{where}[{i}]", issues, feature, code) for i, p in enumerate(coordinates)]
        read = None if any(p is None for p in parts) else parts
    if read is None:
        return None, False
    polygon = {"type": kind, "coordinates": read}
    geometry = shape(polygon)
    reason = shapely.is_valid_reason(geometry)
    if reason != "Valid Geometry" or geometry.area <= 0:
        found = _REASON_POINT.search(reason or "")
        location = [round(float(found.group(1)), 6), round(float(found.group(2)), 6)] if found else None
        issues.add("error", "area_geometry_invalid", feature=feature, area_code=code, field="geometry",
                   location=location)
        return None, False
    return polygon, True


def _read_feature(index: int, raw: Any, issues: _Issues) -> _Feature | None:
    """The feature if its code and level are usable (so the tree checks can use it), every problem reported."""
    if (not isinstance(raw, dict) or raw.get("type") != "Feature" or not isinstance(raw.get("properties"), dict)
            or "geometry" not in raw):
        issues.add("error", "area_feature_invalid", feature=index)
        return None
    props = raw["properties"]
    code = props.get("code")
    if not (isinstance(code, str) and len(code) <= MAX_CODE_LENGTH and CODE_RE.match(code)):
        issues.add("error", "area_code_invalid", feature=index, area_code=code if isinstance(code, str) else None,
                   field="properties.code")
        code = None
    level = props.get("level")
    if level not in LEVEL_RANK:
        issues.add("error", "area_level_invalid", feature=index, area_code=code, field="properties.level")
        level = None
    parent = props.get("parent")
    if level == "county" and parent is not None:
        issues.add("error", "area_parent_unexpected", feature=index, area_code=code, field="properties.parent")
    elif level is not None and level != "county" and parent is None:
        issues.add("error", "area_parent_missing", feature=index, area_code=code, field="properties.parent")
    elif parent is not None and not isinstance(parent, str):
        issues.add("error", "area_parent_unknown", feature=index, area_code=code, field="properties.parent")
        parent = None
    name_zh, ok = _name(props.get("name_zh"), required=True)
    if not ok:
        issues.add("error", "area_name_invalid", feature=index, area_code=code, field="properties.name_zh")
    name_en, ok = _name(props.get("name_en"), required=False)
    if not ok:
        issues.add("error", "area_name_invalid", feature=index, area_code=code, field="properties.name_en")
    polygon, geometry_ok = _read_geometry(raw["geometry"], level, issues, index, code)
    if code is None or level is None:
        return None
    return _Feature(index=index, code=code, level=level, parent_code=parent if level != "county" else None,
                    name_zh=name_zh, name_en=name_en, polygon=polygon, geometry_ok=geometry_ok)


# ── the whole tree ───────────────────────────────────────────────────────────────────────────────


def _point_of(geometry: BaseGeometry) -> list[float]:
    point = geometry.representative_point()
    return [round(point.x, 6), round(point.y, 6)]


def _stored_geometry(polygon: dict | None) -> BaseGeometry | None:
    """A polygon already in the database; repaired if someone stored a broken one, so checks never crash."""
    if not polygon:
        return None
    try:
        geometry = shape(polygon)
    except (ValueError, TypeError, AttributeError, shapely.errors.ShapelyError):
        return None
    return geometry if geometry.is_valid else shapely.make_valid(geometry)


def plan_import(raw_features: list[Any], existing: Iterable[ExistingArea], *, strict: bool = False,
                dry_run: bool = False) -> ImportPlan:
    """Check every feature against the file and the database; the writes, or the reasons for refusing."""
    issues = _Issues()
    stored = {a.code: a for a in existing}
    features: dict[str, _Feature] = {}
    for index, raw in enumerate(raw_features):
        feature = _read_feature(index, raw, issues)
        if feature is None:
            continue
        if feature.code in features:
            issues.add("error", "area_code_duplicate", feature=index, area_code=feature.code,
                       field="properties.code")
            continue
        features[feature.code] = feature

    _check_tree(features, stored, issues)
    geometries = _final_geometries(features, stored)
    _check_overlaps(features, stored, geometries, issues)
    _check_gaps(features, stored, geometries, issues)

    writes, changes = _writes(features, stored)
    errors = sum(1 for i in issues.items if i.severity == "error")
    warnings = len(issues.items) - errors
    refused = errors > 0 or (strict and warnings > 0)
    ordered = sorted(issues.items, key=lambda i: (i.severity != "error", i.feature is None, i.feature or 0,
                                                  i.area_code or "", i.code))
    counts = {action: sum(1 for c in changes if c.action == action) for action in ("created", "updated", "unchanged")}
    report = AreaImportReport(
        applied=False, refused=refused, dry_run=dry_run, strict=strict, features=len(raw_features),
        **counts, untouched=sum(1 for code in stored if code not in features), errors=errors, warnings=warnings,
        areas=changes, issues=ordered[:MAX_ISSUES], issues_omitted=max(0, len(ordered) - MAX_ISSUES),
    )
    return ImportPlan(report=report, writes=[] if refused else writes)


def _check_tree(features: dict[str, _Feature], stored: dict[str, ExistingArea], issues: _Issues) -> None:
    for f in features.values():
        before = stored.get(f.code)
        if before is not None and before.level != f.level:
            issues.add("error", "area_level_changed", feature=f.index, area_code=f.code, field="properties.level")
            continue
        if f.parent_code is None:
            continue
        parent = features.get(f.parent_code) or stored.get(f.parent_code)
        if parent is None:
            issues.add("error", "area_parent_unknown", feature=f.index, area_code=f.code, field="properties.parent",
                       related_code=f.parent_code)
            continue
        if LEVEL_RANK[parent.level] >= LEVEL_RANK[f.level]:
            issues.add("error", "area_level_order", feature=f.index, area_code=f.code, field="properties.parent",
                       related_code=f.parent_code)
        # The database refuses to move an area with children (their materialised paths would go stale);
        # say so here instead of failing half-way through the writes.
        if before is not None and before.parent_code != f.parent_code and before.has_children:
            issues.add("error", "area_moved_with_children", feature=f.index, area_code=f.code,
                       field="properties.parent", related_code=f.parent_code)


def _final_geometries(features: dict[str, _Feature], stored: dict[str, ExistingArea]) -> dict[str, BaseGeometry]:
    """Every polygon as it would be after the import; a feature with an unusable geometry has none."""
    out: dict[str, BaseGeometry] = {}
    for code, area in stored.items():
        if code not in features and (geometry := _stored_geometry(area.polygon)) is not None:
            out[code] = geometry
    for code, f in features.items():
        if f.geometry_ok and f.polygon is not None:
            out[code] = shape(f.polygon)
    return out


def _final_tree(features: dict[str, _Feature], stored: dict[str, ExistingArea]) -> dict[str, tuple[str, str | None]]:
    """code → (level, parent code) after the import."""
    tree = {code: (a.level, a.parent_code) for code, a in stored.items()}
    tree.update({code: (f.level, f.parent_code) for code, f in features.items()})
    return tree


def _check_overlaps(features: dict[str, _Feature], stored: dict[str, ExistingArea],
                    geometries: dict[str, BaseGeometry], issues: _Issues) -> None:
    """Any two grids (siblings or not: routing does not care) whose interiors share more than the tolerance."""
    tree = _final_tree(features, stored)
    codes = sorted(code for code, geometry in geometries.items() if tree[code][0] == "grid")
    if len(codes) < 2:
        return
    geoms = [geometries[code] for code in codes]
    index = shapely.STRtree(geoms)
    left, right = index.query(geoms, predicate="intersects")
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        a, b = codes[i], codes[j]
        if i >= j or (a not in features and b not in features):
            continue
        if not shapely.relate_pattern(geoms[i], geoms[j], "T********"):  # touching edges share no interior
            continue
        common = shapely.intersection(geoms[i], geoms[j])
        size = geo.area_m2(common)
        if size > OVERLAP_TOLERANCE_M2:
            # Reported on the grid the file brings, so the issue points into the file.
            mine, other = (a, b) if a in features else (b, a)
            issues.add("warning", "area_overlap", feature=features[mine].index, area_code=mine, field="geometry",
                       related_code=other, area_m2=size, location=_point_of(common))


def _check_gaps(features: dict[str, _Feature], stored: dict[str, ExistingArea],
                geometries: dict[str, BaseGeometry], issues: _Issues) -> None:
    """Each piece of a parent's polygon that its child grids leave uncovered, for parents the file touches."""
    tree = _final_tree(features, stored)
    grids_of: dict[str, list[str]] = defaultdict(list)
    for code, (level, parent) in tree.items():
        if level == "grid" and parent is not None:
            grids_of[parent].append(code)
    for parent, grids in sorted(grids_of.items()):
        outline = geometries.get(parent)
        if outline is None or not (parent in features or any(g in features for g in grids)):
            continue
        if any(g in features and not features[g].geometry_ok for g in grids):
            continue  # a broken child would show up as a gap it is not
        covered = shapely.union_all([geometries[g] for g in grids if g in geometries])
        left = shapely.difference(outline, covered)
        for piece in shapely.get_parts(left):
            if piece.geom_type != "Polygon" or piece.is_empty:
                continue
            size = geo.area_m2(piece)
            if size > GAP_TOLERANCE_M2:
                issues.add("warning", "area_gap", feature=features[parent].index if parent in features else None,
                           area_code=parent, field="geometry" if parent in features else None,
                           area_m2=size, location=_point_of(piece))


def _writes(features: dict[str, _Feature],
            stored: dict[str, ExistingArea]) -> tuple[list[AreaRecord], list[AreaChange]]:
    """What to insert or update, parents first (a parent is always on a higher level), and what each changes."""
    writes: list[AreaRecord] = []
    changes: list[AreaChange] = []
    for f in sorted(features.values(), key=lambda f: (LEVEL_RANK[f.level], f.index)):
        geometry = shape(f.polygon) if f.polygon is not None and f.geometry_ok else None
        record = AreaRecord(
            code=f.code, level=f.level, parent_code=f.parent_code, name_zh=f.name_zh or "", name_en=f.name_en,
            polygon=f.polygon, bbox=geo.bbox_of(geometry) if geometry is not None else None,
            area_m2=geo.area_m2(geometry) if geometry is not None else None, action="created",
        )
        before = stored.get(f.code)
        if before is None:
            writes.append(record)
            changes.append(AreaChange(code=f.code, level=f.level, action="created"))
            continue
        changed = [name for name, old, new in (("parent", before.parent_code, f.parent_code),
                                                ("name_zh", before.name_zh, f.name_zh),
                                                ("name_en", before.name_en, f.name_en),
                                                ("polygon", before.polygon, f.polygon)) if old != new]
        if changed:
            writes.append(msgspec.structs.replace(record, action="updated"))
            changes.append(AreaChange(code=f.code, level=f.level, action="updated", changed=changed))
        else:
            changes.append(AreaChange(code=f.code, level=f.level, action="unchanged"))
    return writes, changes
