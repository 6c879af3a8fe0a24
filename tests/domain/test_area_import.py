"""Checking an areas GeoJSON file before anything is written: each rule, on small maps built here."""

from __future__ import annotations

import copy
import math

import msgspec
import pytest
from shapely.geometry import Point, shape

from gridrider.domain import geo
from gridrider.domain.area_import import (
    GAP_TOLERANCE_M2,
    OVERLAP_TOLERANCE_M2,
    AreaFileInvalid,
    ExistingArea,
    decode_feature_collection,
    plan_import,
)
from gridrider.domain.demo_geography import (
    DEMO_GAP_POINT,
    DEMO_OUTSIDE_GRIDS_POINT,
    DEMO_OVERLAP_GRIDS,
    DEMO_OVERLAP_POINT,
    zhangwu_demo_areas,
)

# A small town far from the demo's, in the same county: 42.30 N, 122.45 E.
LAT0, LON0 = 42.30, 122.45
M_PER_DEG_LON = geo.M_PER_DEG_LAT * math.cos(math.radians(LAT0))


def rect(x0: float, y0: float, x1: float, y1: float) -> dict:
    """A rectangle given in metres east/north of (LON0, LAT0), as a GeoJSON Polygon (counter-clockwise)."""
    def at(x: float, y: float) -> list[float]:
        return [round(LON0 + x / M_PER_DEG_LON, 7), round(LAT0 + y / geo.M_PER_DEG_LAT, 7)]

    return {"type": "Polygon", "coordinates": [[at(x0, y0), at(x1, y0), at(x1, y1), at(x0, y1), at(x0, y0)]]}


def feature(code: str, level: str, parent: str | None, geometry: dict | None, **props) -> dict:
    properties = {"code": code, "level": level, "name_zh": f"{code}区", **props}
    if parent is not None:
        properties["parent"] = parent
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def town(prefix: str = "NT", *, county: str | None = None) -> list[dict]:
    """A street with one 200 m × 100 m community split into two grids that tile it exactly.

    With `county` the street hangs under that (existing) county; otherwise the file brings its own.
    """
    features = [] if county else [feature(prefix, "county", None, None, name_en="New County")]
    parent = county or prefix
    return [
        *features,
        feature(f"{prefix}-S", "street", parent, None),
        feature(f"{prefix}-S-C1", "community", f"{prefix}-S", rect(0, 0, 200, 100), name_en="Community 1"),
        feature(f"{prefix}-S-C1-G1", "grid", f"{prefix}-S-C1", rect(0, 0, 100, 100)),
        feature(f"{prefix}-S-C1-G2", "grid", f"{prefix}-S-C1", rect(100, 0, 200, 100)),
    ]


def by_code(features: list[dict], code: str) -> dict:
    return next(f for f in features if f["properties"]["code"] == code)


def issues(features: list[dict], existing: list[ExistingArea] = (), **kwargs) -> list[tuple[str, str, str | None]]:
    report = plan_import(features, existing, **kwargs).report
    return [(i.severity, i.code, i.area_code) for i in report.issues]


def stored(features: list[dict], *, with_children: set[str] = frozenset()) -> list[ExistingArea]:
    """The areas of a file as the database would hold them after importing it."""
    return [ExistingArea(id=i, code=f["properties"]["code"], level=f["properties"]["level"],
                         parent_code=f["properties"].get("parent"), name_zh=f["properties"]["name_zh"],
                         name_en=f["properties"].get("name_en"),
                         polygon=f["geometry"], has_children=f["properties"]["code"] in with_children)
            for i, f in enumerate(features, start=1)]


# ── a sound file ─────────────────────────────────────────────────────────────────────────────────


def test_a_sound_file_plans_every_area_parents_first():
    features = town()
    plan = plan_import(list(reversed(features)), [])
    report = plan.report
    assert report.issues == [] and not report.refused
    assert (report.created, report.updated, report.unchanged, report.untouched) == (5, 0, 0, 0)
    assert [w.code for w in plan.writes] == ["NT", "NT-S", "NT-S-C1", "NT-S-C1-G2", "NT-S-C1-G1"]
    grid = next(w for w in plan.writes if w.code == "NT-S-C1-G1")
    geometry = shape(grid.polygon)
    # Measured with the same helpers as the demo seed, so imported and seeded areas compare.
    assert grid.bbox == geo.bbox_of(geometry) and grid.area_m2 == geo.area_m2(geometry)
    assert grid.area_m2 == pytest.approx(100 * 100, rel=1e-3)
    county = plan.writes[0]
    assert (county.polygon, county.bbox, county.area_m2, county.parent_code) == (None, None, None, None)


def test_altitude_and_integer_coordinates_are_stored_as_plain_lon_lat_floats():
    features = town()
    ring = by_code(features, "NT-S-C1-G1")["geometry"]["coordinates"][0]
    ring[:] = [[x, y, 57] for x, y in ring]
    plan = plan_import(features, [])
    grid = next(w for w in plan.writes if w.code == "NT-S-C1-G1")
    assert all(len(p) == 2 and all(type(v) is float for v in p) for p in grid.polygon["coordinates"][0])
    assert not plan.report.issues


def test_a_multipolygon_is_accepted_when_its_parts_do_not_overlap():
    features = town()
    grid = by_code(features, "NT-S-C1-G1")
    grid["geometry"] = {"type": "MultiPolygon", "coordinates": [rect(0, 0, 50, 100)["coordinates"],
                                                                rect(50, 0, 100, 100)["coordinates"]]}
    assert issues(features) == [("error", "area_geometry_invalid", "NT-S-C1-G1")]  # the parts share an edge
    grid["geometry"]["coordinates"][1] = rect(60, 0, 100, 100)["coordinates"]
    assert issues(features) == [("warning", "area_gap", "NT-S-C1")]  # the 10 m between them
    grid["geometry"]["coordinates"] = [rect(0, 0, 50, 50)["coordinates"], rect(0, 50, 100, 100)["coordinates"]]
    grid["geometry"]["coordinates"][0] = rect(0, 0, 100, 50)["coordinates"]
    assert issues(features) == [("error", "area_geometry_invalid", "NT-S-C1-G1")]
    grid["geometry"]["coordinates"][0] = rect(0, 0, 100, 49)["coordinates"]
    assert [c for _, c, _ in issues(features)] == ["area_gap"]


# ── rings ────────────────────────────────────────────────────────────────────────────────────────


def _unclosed(ring):
    ring.pop()


def _three_positions(ring):
    del ring[1:3]


def _bowtie(ring):
    ring[1], ring[2] = ring[2], ring[1]


def _out_of_range(ring):
    ring[1] = [ring[1][1], ring[1][0]]  # lat, lon swapped: "latitude" 122


def _not_a_number(ring):
    ring[2] = [str(ring[2][0]), ring[2][1]]


def _not_finite(ring):
    ring[2] = [math.inf, ring[2][1]]


def _one_number(ring):
    ring[2] = [ring[2][0]]


def _boolean(ring):
    ring[2] = [True, ring[2][1]]


@pytest.mark.parametrize(("damage", "code", "field"), [
    (_unclosed, "area_ring_not_closed", "geometry.coordinates[0]"),
    (_three_positions, "area_ring_too_short", "geometry.coordinates[0]"),
    (_bowtie, "area_geometry_invalid", "geometry"),
    (_out_of_range, "area_coordinate_out_of_range", "geometry.coordinates[0][1]"),
    (_not_a_number, "area_coordinates_invalid", "geometry.coordinates[0][2]"),
    (_not_finite, "area_coordinates_invalid", "geometry.coordinates[0][2]"),
    (_one_number, "area_coordinates_invalid", "geometry.coordinates[0][2]"),
    (_boolean, "area_coordinates_invalid", "geometry.coordinates[0][2]"),
])
def test_a_broken_ring_is_an_error_that_names_the_feature_and_where(damage, code, field):
    features = town()
    damage(by_code(features, "NT-S-C1-G2")["geometry"]["coordinates"][0])
    plan = plan_import(features, [])
    [issue] = plan.report.issues
    assert (issue.severity, issue.code, issue.area_code, issue.feature, issue.field) == (
        "error", code, "NT-S-C1-G2", 4, field)
    assert plan.report.refused and plan.writes == []
    # A grid whose geometry is unusable takes part in no geometric check: its place is no "gap".
    assert "area_gap" not in [i.code for i in plan.report.issues]


def test_a_self_intersection_is_located():
    features = town()
    _bowtie(by_code(features, "NT-S-C1-G1")["geometry"]["coordinates"][0])
    [issue] = plan_import(features, []).report.issues
    lon, lat = issue.location
    assert Point(lon, lat).within(shape(rect(-1, -1, 101, 101)))


@pytest.mark.parametrize(("geometry", "code"), [
    ({"type": "Point", "coordinates": [LON0, LAT0]}, "area_geometry_type"),
    ({"type": "Polygon"}, "area_coordinates_invalid"),
    ({"type": "Polygon", "coordinates": []}, "area_coordinates_invalid"),
    ({"type": "Polygon", "coordinates": [[]]}, "area_ring_too_short"),
    ({"type": "Polygon", "coordinates": "0,0 1,1"}, "area_coordinates_invalid"),
    ({"type": "MultiPolygon", "coordinates": []}, "area_coordinates_invalid"),
    ("POLYGON ((0 0, 1 0, 1 1, 0 0))", "area_geometry_type"),
    (None, "area_geometry_required"),
])
def test_a_grid_needs_a_polygon(geometry, code):
    features = town()
    by_code(features, "NT-S-C1-G2")["geometry"] = geometry
    assert ("error", code, "NT-S-C1-G2") in issues(features)


def test_a_parent_may_have_no_polygon():
    features = town()
    by_code(features, "NT-S-C1")["geometry"] = None
    assert issues(features) == []  # and without an outline there is no gap to find


# ── codes, levels, names, parents ────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("code", ["a/b", "-x", "a_b", "a%", "", " NT", "街道", "x" * 65, 42, None])
def test_a_bad_code_is_an_error(code):
    features = town()
    features.append(feature("tmp", "grid", "NT-S-C1", rect(200, 0, 300, 100)))
    features[-1]["properties"]["code"] = code
    found = issues(features)
    assert ("error", "area_code_invalid", code if isinstance(code, str) else None) in found


@pytest.mark.parametrize("code", ["ZW.2", "0", "A-1.b", "x" * 64])
def test_a_good_code_is_accepted(code):
    features = town()
    features.append(feature(code, "community", "NT-S", None))
    assert issues(features) == []


def test_a_code_twice_in_the_file_is_an_error():
    features = town()
    features.append(feature("NT-S-C1-G1", "grid", "NT-S-C1", rect(0, 0, 100, 100)))
    report = plan_import(features, []).report
    assert [(i.code, i.feature) for i in report.issues if i.severity == "error"] == [("area_code_duplicate", 5)]


@pytest.mark.parametrize("level", ["town", "Grid", "", None, 3])
def test_an_unknown_level_is_an_error(level):
    features = town()
    by_code(features, "NT-S")["properties"]["level"] = level
    assert ("error", "area_level_invalid", "NT-S") in issues(features)


def test_a_parent_must_be_on_a_higher_level():
    features = town()
    by_code(features, "NT-S-C1-G2")["properties"]["parent"] = "NT-S-C1-G1"  # a grid inside a grid
    assert ("error", "area_level_order", "NT-S-C1-G2") in issues(features)
    by_code(features, "NT-S")["properties"]["parent"] = "NT-S-C1"  # a street inside its own community
    assert ("error", "area_level_order", "NT-S") in issues(features)


def test_a_level_may_be_skipped():
    features = town()
    features.append(feature("NT-S-G9", "grid", "NT-S", rect(0, 200, 100, 300)))  # a grid right under a street
    assert issues(features) == []


def test_a_parent_neither_in_the_file_nor_in_the_database_is_an_orphan():
    features = town(county="ZW")
    report = plan_import(features, []).report
    [issue] = report.issues
    assert (issue.code, issue.area_code, issue.related_code, issue.field) == (
        "area_parent_unknown", "NT-S", "ZW", "properties.parent")
    county = ExistingArea(id=1, code="ZW", level="county", parent_code=None, name_zh="彰武县", name_en=None,
                          polygon=None, has_children=True)
    assert issues(features, [county]) == []


@pytest.mark.parametrize(("code", "parent", "issue"), [
    ("NT-S", None, "area_parent_missing"),
    ("NT", "ZW", "area_parent_unexpected"),
    ("NT-S", 7, "area_parent_unknown"),
])
def test_only_a_county_has_no_parent(code, parent, issue):
    features = town()
    by_code(features, code)["properties"].pop("parent", None)
    if parent is not None:
        by_code(features, code)["properties"]["parent"] = parent
    assert ("error", issue, code) in issues(features)


@pytest.mark.parametrize(("props", "field"), [
    ({"name_zh": None}, "properties.name_zh"),
    ({"name_zh": "   "}, "properties.name_zh"),
    ({"name_zh": "x" * 101}, "properties.name_zh"),
    ({"name_zh": "城\n北"}, "properties.name_zh"),
    ({"name_zh": 12}, "properties.name_zh"),
    ({"name_en": ""}, "properties.name_en"),
    ({"name_en": "x" * 101}, "properties.name_en"),
])
def test_names_are_checked(props, field):
    features = town()
    by_code(features, "NT-S-C1")["properties"].update(props)
    report = plan_import(features, []).report
    assert [(i.code, i.field) for i in report.issues] == [("area_name_invalid", field)]


def test_names_are_trimmed_and_other_properties_ignored():
    features = town()
    by_code(features, "NT-S-C1")["properties"].update(name_zh=" 新社区 ", OBJECTID=7, Shape_Area=2.0e-6)
    plan = plan_import(features, [])
    assert not plan.report.issues
    assert next(w for w in plan.writes if w.code == "NT-S-C1").name_zh == "新社区"


@pytest.mark.parametrize("raw", ["a string", {"type": "Feature", "geometry": None},
                                 {"type": "Feature", "properties": {"code": "X"}},
                                 {"type": "Polygon", "properties": {}, "geometry": None}, None])
def test_something_that_is_not_a_feature_is_an_error(raw):
    features = [*town(), raw]
    assert ("error", "area_feature_invalid", None) in issues(features)


# ── overlaps and gaps: warnings, refused only when strict ─────────────────────────────────────────


def test_overlapping_grids_are_a_warning_with_size_and_place():
    features = town()
    by_code(features, "NT-S-C1-G2")["geometry"] = rect(90, 0, 200, 100)  # 10 m into G1
    report = plan_import(features, []).report
    [issue] = report.issues
    assert (issue.severity, issue.code, issue.area_code, issue.related_code) == (
        "warning", "area_overlap", "NT-S-C1-G1", "NT-S-C1-G2")
    assert issue.area_m2 == pytest.approx(10 * 100, rel=0.01)
    assert Point(*issue.location).within(shape(rect(90, 0, 100, 100)))
    assert not report.refused


def test_grids_that_only_touch_or_overlap_by_less_than_the_tolerance_do_not_overlap():
    features = town()
    assert issues(features) == []
    sliver = OVERLAP_TOLERANCE_M2 / 2 / 100  # metres of overlap along the 100 m edge
    by_code(features, "NT-S-C1-G2")["geometry"] = rect(100 - sliver, 0, 200, 100)
    assert issues(features) == []


def test_a_grid_inside_another_grid_overlaps_it():
    features = town()
    features.append(feature("NT-S-C1-G3", "grid", "NT-S-C1", rect(20, 20, 40, 40)))
    [issue] = plan_import(features, []).report.issues
    assert (issue.code, issue.area_m2) == ("area_overlap", pytest.approx(400, rel=0.01))


def test_grids_of_different_parents_overlap_too():
    features = town()
    features += [feature("NT-S-C2", "community", "NT-S", rect(200, 0, 300, 100)),
                 feature("NT-S-C2-G1", "grid", "NT-S-C2", rect(195, 0, 300, 100))]
    assert [(c, a) for _, c, a in issues(features)] == [("area_overlap", "NT-S-C1-G2")]


def test_uncovered_parts_of_a_parent_are_gaps_with_size_and_place():
    features = town()
    by_code(features, "NT-S-C1-G1")["geometry"] = rect(10, 0, 100, 100)  # 10 m strip on the west side
    by_code(features, "NT-S-C1-G2")["geometry"] = rect(100, 0, 200, 80)  # 20 m strip in the north-east
    report = plan_import(features, []).report
    gaps = sorted(report.issues, key=lambda i: i.area_m2)
    assert [(i.severity, i.code, i.area_code, i.field) for i in gaps] == [
        ("warning", "area_gap", "NT-S-C1", "geometry")] * 2
    assert [g.area_m2 for g in gaps] == [pytest.approx(1000, rel=0.01), pytest.approx(2000, rel=0.01)]
    assert Point(*gaps[0].location).within(shape(rect(0, 0, 10, 100)))
    assert Point(*gaps[1].location).within(shape(rect(100, 80, 200, 100)))


def test_a_gap_below_the_tolerance_is_not_reported():
    features = town()
    sliver = GAP_TOLERANCE_M2 / 2 / 100
    by_code(features, "NT-S-C1-G1")["geometry"] = rect(sliver, 0, 100, 100)
    assert issues(features) == []


def test_a_file_with_a_gap_and_an_overlap():
    """The report a person reads: both warnings, where and how big, and the import goes ahead unless strict."""
    features = town()
    by_code(features, "NT-S-C1-G1")["geometry"] = rect(0, 0, 110, 60)   # 10 m into G2, leaving the north-west
    report = plan_import(features, []).report
    assert not report.refused and (report.errors, report.warnings) == (0, 2)
    found = {i.code: i for i in report.issues}
    assert found["area_overlap"].area_m2 == pytest.approx(10 * 60, rel=0.01)
    assert found["area_overlap"].related_code == "NT-S-C1-G2"
    assert found["area_gap"].area_m2 == pytest.approx(100 * 40, rel=0.01)
    assert Point(*found["area_gap"].location).within(shape(rect(0, 60, 100, 100)))
    assert (report.created, report.features) == (5, 5)

    strict = plan_import(features, [], strict=True)
    assert strict.report.refused and strict.writes == []
    assert [e.code for e in strict.report.field_errors("en")] == ["area_gap", "area_overlap"]
    english = strict.report.in_language("en")
    assert english.issues[0].message.startswith("Part of the area is in none of its grids")


def test_the_demo_map_shows_exactly_its_three_deliberate_defects():
    features = [feature(a.code, a.level, a.parent_code, a.polygon, name_en=a.name_en, name_zh=a.name_zh)
                for a in zhangwu_demo_areas()]
    report = plan_import(features, []).report
    assert (report.errors, report.created) == (0, 154)
    found = sorted((i.code, i.area_code) for i in report.issues)
    assert found == [("area_gap", "ZW-ZWZ-C04"), ("area_gap", "ZW-ZWZ-C07"),
                     ("area_overlap", DEMO_OVERLAP_GRIDS[0])]
    by_kind = {(i.code, i.area_code): i for i in report.issues}
    gap = by_kind["area_gap", "ZW-ZWZ-C07"]
    assert geo.haversine_m(*DEMO_GAP_POINT, gap.location[1], gap.location[0]) < 30
    lake = by_kind["area_gap", "ZW-ZWZ-C04"]
    assert geo.haversine_m(*DEMO_OUTSIDE_GRIDS_POINT, lake.location[1], lake.location[0]) < 60
    assert lake.area_m2 == pytest.approx(math.pi * 110 * 88, rel=0.2)  # the lake's ellipse
    overlap = by_kind["area_overlap", DEMO_OVERLAP_GRIDS[0]]
    assert overlap.related_code == DEMO_OVERLAP_GRIDS[1]
    assert geo.haversine_m(*DEMO_OVERLAP_POINT, overlap.location[1], overlap.location[0]) < 30


def test_only_what_the_file_touches_is_checked_for_gaps_and_overlaps():
    # The database already holds a gappy community; a file that adds an unrelated street is not blamed for it.
    gappy = town()
    by_code(gappy, "NT-S-C1-G1")["geometry"] = rect(10, 0, 100, 100)
    existing = stored(gappy, with_children={"NT", "NT-S", "NT-S-C1"})
    other = [feature("NT-S2", "street", "NT", None),
             feature("NT-S2-C1", "community", "NT-S2", rect(0, 500, 100, 600)),
             feature("NT-S2-C1-G1", "grid", "NT-S2-C1", rect(0, 500, 100, 600))]
    assert issues(other, existing) == []
    # …but a file that brings a grid into it is told about the gap, on the stored parent.
    other.append(feature("NT-S-C1-G3", "grid", "NT-S-C1", rect(0, 0, 5, 100)))
    report = plan_import(other, existing).report
    [issue] = report.issues
    assert (issue.code, issue.area_code, issue.feature, issue.area_m2) == (
        "area_gap", "NT-S-C1", None, pytest.approx(500, rel=0.01))


# ── re-import over what the database holds ───────────────────────────────────────────────────────


def test_a_re_import_updates_what_changed_and_leaves_the_rest():
    features = town()
    existing = stored(features, with_children={"NT", "NT-S", "NT-S-C1"})
    extra = ExistingArea(id=99, code="NT-S-C9", level="community", parent_code="NT-S", name_zh="旧社区",
                         name_en=None, polygon=None, has_children=False)
    again = copy.deepcopy(features)
    by_code(again, "NT-S-C1")["properties"]["name_zh"] = "新名字"
    by_code(again, "NT-S-C1")["properties"].pop("name_en")  # the file states the whole area: cleared
    by_code(again, "NT-S-C1-G2")["geometry"] = rect(100, 0, 200, 100.5)
    plan = plan_import(again, [*existing, extra])
    report = plan.report
    assert (report.created, report.updated, report.unchanged, report.untouched) == (0, 2, 3, 1)
    assert {c.code: c.changed for c in report.areas if c.action == "updated"} == {
        "NT-S-C1": ["name_zh", "name_en"], "NT-S-C1-G2": ["polygon"]}
    assert [(w.code, w.action) for w in plan.writes] == [("NT-S-C1", "updated"), ("NT-S-C1-G2", "updated")]
    assert plan_import(features, existing).report.unchanged == 5


def test_an_existing_area_keeps_its_level():
    features = town()
    existing = stored(features)
    by_code(features, "NT-S-C1-G2")["properties"]["level"] = "community"
    assert ("error", "area_level_changed", "NT-S-C1-G2") in issues(features, existing)


def test_an_area_with_children_cannot_move_but_a_childless_one_can():
    features = town()
    features.append(feature("NT-S-C2", "community", "NT-S", rect(0, 100, 200, 200)))
    existing = stored(features, with_children={"NT", "NT-S", "NT-S-C1"})
    moved = copy.deepcopy(features)
    by_code(moved, "NT-S-C1")["properties"]["parent"] = "NT"
    assert issues(moved, existing) == [("error", "area_moved_with_children", "NT-S-C1")]

    moved = copy.deepcopy(features)
    by_code(moved, "NT-S-C1-G2")["properties"]["parent"] = "NT-S-C2"
    plan = plan_import(moved, existing)
    assert [(c.code, c.changed) for c in plan.report.areas if c.action == "updated"] == [("NT-S-C1-G2", ["parent"])]
    # Now C1 has one grid for half of it, and C2 a grid far outside its own outline.
    assert sorted((i.code, i.area_code) for i in plan.report.issues) == [("area_gap", "NT-S-C1"),
                                                                         ("area_gap", "NT-S-C2")]


def test_a_broken_polygon_in_the_database_does_not_break_the_checks():
    features = town()
    existing = stored(features, with_children={"NT", "NT-S", "NT-S-C1"})
    bowtie = copy.deepcopy(existing[3].polygon)
    _bowtie(bowtie["coordinates"][0])
    existing[3] = msgspec.structs.replace(existing[3], polygon=bowtie)
    report = plan_import([by_code(features, "NT-S-C1-G2")], existing).report
    assert report.errors == 0


# ── the file as a whole ──────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(("raw", "field"), [
    (b"{not json", "body"),
    (b"", "body"),
    (b'{"type": "FeatureCollection", "features": [1e999]}', "body"),
    (b"[]", "type"),
    (b'{"type": "Feature", "properties": {}, "geometry": null}', "type"),
    (b'{"type": "FeatureCollection"}', "features"),
    (b'{"type": "FeatureCollection", "features": []}', "features"),
    (b'{"type": "FeatureCollection", "features": {"a": 1}}', "features"),
])
def test_a_file_that_is_not_a_feature_collection_is_refused_whole(raw, field):
    with pytest.raises(AreaFileInvalid) as refused:
        decode_feature_collection(raw)
    assert refused.value.code == "areas_file_invalid" and refused.value.status == 422
    assert [e.field for e in refused.value.errors] == [field]


def test_a_byte_order_mark_is_tolerated():
    raw = b"\xef\xbb\xbf" + msgspec.json.encode({"type": "FeatureCollection", "features": town()})
    assert len(decode_feature_collection(raw)) == 5


def test_a_file_wrong_everywhere_gives_a_bounded_report():
    features = [feature(f"G{i}", "grid", "nowhere", None) for i in range(800)]
    report = plan_import(features, []).report
    assert report.errors == 1600 and len(report.issues) == 1000 and report.issues_omitted == 600
