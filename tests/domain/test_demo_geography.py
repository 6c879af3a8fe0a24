import math
from collections import Counter
from functools import cache
from itertools import combinations

import pytest
import shapely
from shapely.geometry import Point, shape

from gridrider.domain.demo_geography import (
    DEMO_GAP_GRIDS,
    DEMO_GAP_POINT,
    DEMO_OUTSIDE_GRIDS_POINT,
    DEMO_OVERLAP_GRIDS,
    DEMO_OVERLAP_POINT,
    DemoArea,
    zhangwu_demo_areas,
)

LAT0, LON0 = 42.38, 122.53
M_PER_DEG_LAT = 111_320.0
M_PER_DEG_LON = M_PER_DEG_LAT * math.cos(math.radians(LAT0))
ONE_M2_IN_DEG2 = 1 / (M_PER_DEG_LAT * M_PER_DEG_LON)


@cache
def areas() -> tuple[DemoArea, ...]:
    return tuple(zhangwu_demo_areas())


@cache
def shapes() -> dict[str, shapely.Polygon]:
    return {a.code: shape(a.polygon) for a in areas()}


def of_level(level: str) -> list[DemoArea]:
    return [a for a in areas() if a.level == level]


def grid_shapes() -> dict[str, shapely.Polygon]:
    return {a.code: shapes()[a.code] for a in of_level("grid")}


def to_metres(geom):
    return shapely.transform(geom, lambda xy: (xy - (LON0, LAT0)) * (M_PER_DEG_LON, M_PER_DEG_LAT))


def point(lat_lon: tuple[float, float]) -> Point:
    return Point(lat_lon[1], lat_lon[0])


def distance_m(geom, lat_lon: tuple[float, float]) -> float:
    return to_metres(geom).distance(to_metres(point(lat_lon)))


def outside_area(inner, outer) -> float:
    return inner.difference(outer).area


def test_counts_and_levels():
    assert Counter(a.level for a in areas()) == {"county": 1, "street": 1, "community": 16, "grid": 136}
    per_community = Counter(a.parent_code for a in of_level("grid"))
    assert len(per_community) == 16
    assert all(6 <= n <= 11 for n in per_community.values())
    assert len(set(per_community.values())) > 3, "grid counts should be uneven"
    assert len({a.code for a in areas()}) == len(areas())


def test_codes_and_names():
    county, town = areas()[:2]
    assert (county.code, county.name_zh, county.name_en) == ("ZW", "彰武县", "Zhangwu County")
    assert (town.code, town.parent_code) == ("ZW-ZWZ", "ZW")
    assert (town.name_zh, town.name_en) == ("彰武镇", "Zhangwu Town")
    for c in of_level("community"):
        assert c.parent_code == "ZW-ZWZ"
        assert c.name_zh.endswith("社区")
        assert c.name_en.endswith(" Community")
    assert len({c.name_zh for c in of_level("community")}) == 16
    names = {c.code: c for c in of_level("community")}
    for g in of_level("grid"):
        parent = names[g.parent_code]
        n = int(g.code.rsplit("-G", 1)[1])
        assert g.code.startswith(parent.code + "-G")
        assert g.name_zh == f"{parent.name_zh}第{n}网格"
        assert g.name_en == f"{parent.name_en} Grid {n}"


def test_parents_come_first():
    seen: set[str] = set()
    for a in areas():
        assert a.parent_code is None or a.parent_code in seen
        seen.add(a.code)


def test_polygons_are_valid_closed_ccw_geojson():
    for a in areas():
        assert a.polygon["type"] == "Polygon"
        rings = a.polygon["coordinates"]
        assert len(rings) == 1, a.code
        ring = rings[0]
        assert ring[0] == ring[-1]
        assert all(round(v, 6) == v for xy in ring for v in xy)
        poly = shapes()[a.code]
        assert poly.is_valid, a.code
        assert poly.exterior.is_ccw, a.code


def test_town_is_around_zhangwu():
    town = shapes()["ZW-ZWZ"]
    assert town.contains(Point(LON0, LAT0))
    assert 15e6 < to_metres(town).area < 35e6


def test_grid_sizes_are_realistic():
    sizes = sorted(to_metres(g).area / 1e6 for g in grid_shapes().values())
    assert sizes[0] > 0.03
    assert sizes[-1] < 0.6
    assert 0.1 <= sizes[len(sizes) // 2] <= 0.4


def test_hierarchy_containment():
    tolerance = ONE_M2_IN_DEG2
    by_code = shapes()
    for a in areas()[1:]:
        assert outside_area(by_code[a.code], by_code[a.parent_code]) < tolerance, a.code


def test_polygons_are_irregular():
    def is_axis_aligned_rectangle(poly) -> bool:
        return len(poly.exterior.coords) == 5 and math.isclose(poly.area, poly.envelope.area)

    grids = list(grid_shapes().values())
    assert not any(is_axis_aligned_rectangle(g) for g in grids)
    assert sum(len(g.exterior.coords) - 1 >= 5 for g in grids) > 0.8 * len(grids)
    for a in areas()[:18]:
        assert len(a.polygon["coordinates"][0]) > 8, a.code


def test_gap_point_is_in_no_grid_but_close_to_the_gap_grids():
    gap = point(DEMO_GAP_POINT)
    grids = grid_shapes()
    assert not any(g.intersects(gap) for g in grids.values())
    assert min(distance_m(grids[code], DEMO_GAP_POINT) for code in DEMO_GAP_GRIDS) <= 30
    assert shapes()["ZW-ZWZ"].contains(gap)


def test_overlap_point_is_in_exactly_the_overlap_grids():
    hits = [code for code, g in grid_shapes().items() if g.contains(point(DEMO_OVERLAP_POINT))]
    assert sorted(hits) == sorted(DEMO_OVERLAP_GRIDS)
    smaller, larger = (grid_shapes()[code] for code in DEMO_OVERLAP_GRIDS)
    assert smaller.area < larger.area


def test_outside_point_is_in_town_but_far_from_every_grid():
    outside = point(DEMO_OUTSIDE_GRIDS_POINT)
    assert shapes()["ZW"].contains(outside)
    assert shapes()["ZW-ZWZ"].contains(outside)
    assert all(distance_m(g, DEMO_OUTSIDE_GRIDS_POINT) > 30 for g in grid_shapes().values())


def test_no_overlaps_except_the_deliberate_one():
    grids = grid_shapes()
    codes = list(grids)
    tree = shapely.STRtree(list(grids.values()))
    overlapping = set()
    for i, j in zip(*tree.query(list(grids.values()), predicate="intersects"), strict=True):
        if i < j and grids[codes[i]].intersection(grids[codes[j]]).area > ONE_M2_IN_DEG2:
            overlapping.add(frozenset((codes[i], codes[j])))
    assert overlapping == {frozenset(DEMO_OVERLAP_GRIDS)}


def test_grids_cover_their_community_apart_from_the_defects():
    defect_grids = {DEMO_GAP_GRIDS[0]}
    lake = point(DEMO_OUTSIDE_GRIDS_POINT)
    for c in of_level("community"):
        community = shapes()[c.code]
        kids = {a.code: shapes()[a.code] for a in of_level("grid") if a.parent_code == c.code}
        uncovered = to_metres(community.difference(shapely.union_all(list(kids.values())))).area
        if defect_grids & kids.keys() or community.contains(lake):
            assert 1_000 < uncovered < 60_000, c.code
        else:
            assert uncovered < 1, c.code


def test_communities_tile_the_town():
    communities = [shapes()[c.code] for c in of_level("community")]
    for a, b in combinations(communities, 2):
        assert a.intersection(b).area < ONE_M2_IN_DEG2
    town = shapes()["ZW-ZWZ"]
    assert abs(shapely.union_all(communities).area - town.area) < ONE_M2_IN_DEG2


@pytest.mark.parametrize("level", ["county", "street"])
def test_outer_areas_contain_the_town_centre(level: str):
    (area,) = of_level(level)
    assert shapes()[area.code].contains(Point(LON0, LAT0))


def test_deterministic():
    assert zhangwu_demo_areas() == zhangwu_demo_areas()
