"""Routing on the Zhangwu demo map, whose deliberate defects give every rule something to do."""

import pytest
from shapely.geometry import shape

from gridrider.domain.demo_geography import (
    DEMO_GAP_GRIDS,
    DEMO_GAP_POINT,
    DEMO_OUTSIDE_GRIDS_POINT,
    DEMO_OVERLAP_GRIDS,
    DEMO_OVERLAP_POINT,
    zhangwu_demo_areas,
)
from gridrider.domain.routing import AreaIndex, AreaShape


@pytest.fixture(scope="module")
def demo():
    areas = zhangwu_demo_areas()
    ids = {a.code: i for i, a in enumerate(areas, start=1)}
    shapes = [AreaShape(id=ids[a.code], code=a.code, level=a.level, polygon=a.polygon, area_m2=None) for a in areas]
    return AreaIndex(shapes), ids, areas


def test_a_point_inside_a_grid_goes_to_that_grid(demo):
    index, ids, areas = demo
    grid = next(a for a in areas if a.code == "ZW-ZWZ-C02-G03")
    inside = shape(grid.polygon).representative_point()
    route = index.route(inside.y, inside.x)
    assert (route.grid_id, route.how) == (ids["ZW-ZWZ-C02-G03"], "inside")


def test_every_grid_routes_its_own_interior(demo):
    index, ids, areas = demo
    for grid in (a for a in areas if a.level == "grid"):
        if grid.code in DEMO_OVERLAP_GRIDS:
            continue
        point = shape(grid.polygon).representative_point()
        assert index.route(point.y, point.x).grid_id == ids[grid.code], grid.code


def test_in_the_gap_the_nearest_grid_within_30_m(demo):
    index, ids, _ = demo
    route = index.route(*DEMO_GAP_POINT)
    assert route.how == "gap"
    assert route.grid_id in {ids[c] for c in DEMO_GAP_GRIDS}


def test_in_the_overlap_the_smaller_grid(demo):
    index, ids, _ = demo
    route = index.route(*DEMO_OVERLAP_POINT)
    assert (route.grid_id, route.how) == (ids[DEMO_OVERLAP_GRIDS[0]], "overlap")


def test_outside_every_grid_is_unrouted_for_the_smallest_enclosing_area(demo):
    index, ids, areas = demo
    route = index.route(*DEMO_OUTSIDE_GRIDS_POINT)
    assert (route.grid_id, route.how) == (None, "unrouted")
    owner = next(a for a in areas if ids[a.code] == route.owner_area_id)
    assert owner.level == "community"
    assert shape(owner.polygon).contains(shape({"type": "Point", "coordinates": DEMO_OUTSIDE_GRIDS_POINT[::-1]}))


def test_outside_the_town_belongs_to_the_county(demo):
    index, ids, _ = demo
    route = index.route(42.60, 122.90)  # far outside every polygon
    assert (route.grid_id, route.owner_area_id) == (None, ids["ZW"])
