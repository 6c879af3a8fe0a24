"""Demo area hierarchy for Zhangwu town (彰武镇), Zhangwu county, Fuxin, Liaoning.

The polygons are generated, not surveyed: a jittered Voronoi partition of a wobbly town
outline into 16 communities, each split again into grids. One fixed seed drives it all,
so every run (and every test) sees the same map.

Real grid maps are drawn by hand, office by office, and never tile perfectly. The demo
therefore carries exactly three deliberate defects, so that every incident-routing rule
has something to act on:

* a ~20 m gap between two grids (DEMO_GAP_*): "nearest grid within 30 m";
* a small overlap of two grids (DEMO_OVERLAP_*): "the smaller grid wins";
* a lake at a grid junction that no grid covers (DEMO_OUTSIDE_GRIDS_POINT): unrouted.
"""

import math
import random

import msgspec
import shapely
from shapely import affinity
from shapely.geometry import MultiPoint, Point, Polygon
from shapely.geometry.polygon import orient


class DemoArea(msgspec.Struct, frozen=True):
    code: str
    level: str  # 'county' | 'street' | 'community' | 'grid'
    parent_code: str | None
    name_zh: str
    name_en: str
    polygon: dict  # GeoJSON Polygon, WGS-84 [lon, lat], counter-clockwise exterior ring


# The grid codes and the lake centre drive the generator; the two probe points were read
# off its output and are pinned by tests/domain/test_demo_geography.py.
DEMO_GAP_GRIDS: tuple[str, str] = ("ZW-ZWZ-C07-G08", "ZW-ZWZ-C07-G09")  # first one is shrunk
DEMO_GAP_POINT: tuple[float, float] = (42.37415, 122.534416)  # (lat, lon), ~10 m from both
DEMO_OVERLAP_GRIDS: tuple[str, str] = ("ZW-ZWZ-C12-G02", "ZW-ZWZ-C12-G03")  # (smaller, larger)
DEMO_OVERLAP_POINT: tuple[float, float] = (42.371519, 122.539716)
DEMO_OUTSIDE_GRIDS_POINT: tuple[float, float] = (42.388912, 122.537682)  # centre of the lake

_SEED = 20261126
_LAT0, _LON0 = 42.38, 122.53  # town centre, and origin of the local metric frame
_M_PER_DEG_LAT = 111_320.0
_M_PER_DEG_LON = _M_PER_DEG_LAT * math.cos(math.radians(_LAT0))
_GRID_SIZE = 1e-6  # output precision in degrees, ~0.1 m

_GAP_WIDTH_M = 20.0
_OVERLAP_DEPTH_M = 25.0
_LAKE_RADIUS_M = 110.0

# The first four go to the matching edge of town, so the names read plausibly on a map.
_COMMUNITY_NAMES = [
    ("城北", "Chengbei"), ("城南", "Chengnan"), ("东风", "Dongfeng"), ("西苑", "Xiyuan"),
    ("新华", "Xinhua"), ("建设", "Jianshe"), ("文化", "Wenhua"), ("胜利", "Shengli"),
    ("团结", "Tuanjie"), ("和平", "Heping"), ("光明", "Guangming"), ("兴隆", "Xinglong"),
    ("振兴", "Zhenxing"), ("铁路", "Tielu"), ("站前", "Zhanqian"), ("河畔", "Hepan"),
]  # fmt: skip
# Uneven on purpose, like real workloads; handed out largest community first. Sums to 136.
_GRID_COUNTS = [11, 11, 10, 10, 10, 9, 9, 9, 8, 8, 8, 7, 7, 7, 6, 6]


def zhangwu_demo_areas() -> list[DemoArea]:
    """County, town, 16 communities and 136 grids, parents before children."""
    rng = random.Random(_SEED)
    # The county seat lies south-east of the county's middle, as the real one does.
    county = _wobbly(rng, -9000, 4500, 34000, 36000, n=64, wobble=0.15)
    town = _wobbly(rng, 0, 0, 3000, 2500, n=48, wobble=0.12)

    communities = _reading_order(_partition(rng, town, 16, relax=3), row_m=1000)
    names = _community_names(communities)
    by_size = sorted(range(16), key=lambda ci: -communities[ci].area)
    grid_counts = {ci: _GRID_COUNTS[rank] for rank, ci in enumerate(by_size)}

    grids: dict[str, Polygon] = {}
    for ci, community in enumerate(communities):
        cells = _partition(rng, community, grid_counts[ci], relax=2)
        for gi, cell in enumerate(_reading_order(cells, row_m=300)):
            grids[f"ZW-ZWZ-C{ci + 1:02d}-G{gi + 1:02d}"] = cell
    _add_defects(rng, grids)

    snapped = _snap_together([_to_deg(g) for g in [*grids.values(), *communities]], _to_deg(town))
    grids_deg, communities_deg = snapped[: len(grids)], snapped[len(grids) :]
    town_deg = shapely.union_all(communities_deg, grid_size=_GRID_SIZE)

    areas = [
        DemoArea("ZW", "county", None, "彰武县", "Zhangwu County", _geojson(_to_deg(county))),
        DemoArea("ZW-ZWZ", "street", "ZW", "彰武镇", "Zhangwu Town", _geojson(town_deg)),
    ]
    for ci, poly in enumerate(communities_deg):
        zh, en = names[ci]
        code = f"ZW-ZWZ-C{ci + 1:02d}"
        areas.append(DemoArea(code, "community", "ZW-ZWZ", f"{zh}社区", f"{en} Community", _geojson(poly)))
    for code, poly in zip(grids, grids_deg, strict=True):
        parent, n = code[:10], int(code[-2:])
        zh, en = names[int(parent[-2:]) - 1]
        name_zh, name_en = f"{zh}社区第{n}网格", f"{en} Community Grid {n}"
        areas.append(DemoArea(code, "grid", parent, name_zh, name_en, _geojson(poly)))
    return areas


def _wobbly(rng: random.Random, cx: float, cy: float, rx: float, ry: float, n: int, wobble: float) -> Polygon:
    """A star-shaped blob: r(t) > 0 at every angle, so the ring never self-intersects."""
    p1, p2, p3 = (rng.uniform(0, 2 * math.pi) for _ in range(3))
    ring = []
    for i in range(n):
        t = 2 * math.pi * i / n
        swell = 0.5 * math.sin(2 * t + p1) + 0.3 * math.sin(3 * t + p2) + 0.2 * math.sin(5 * t + p3)
        r = 1 + wobble * swell + rng.uniform(-0.02, 0.02)
        ring.append((cx + rx * r * math.cos(t), cy + ry * r * math.sin(t)))
    return Polygon(ring)


def _partition(rng: random.Random, region: Polygon, n: int, relax: int) -> list[Polygon]:
    """Split region into n irregular cells; a little Lloyd relaxation avoids slivers."""
    minx, miny, maxx, maxy = region.bounds
    seeds: list[Point] = []
    while len(seeds) < n:
        p = Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
        if region.contains(p):
            seeds.append(p)
    envelope = region.buffer(1000).envelope
    for iteration in range(relax + 1):
        diagram = shapely.voronoi_polygons(MultiPoint(seeds), extend_to=envelope, ordered=True)
        cells = [cell.intersection(region) for cell in diagram.geoms]
        if iteration < relax:
            seeds = [c.centroid if region.contains(c.centroid) else c.point_on_surface() for c in cells]
    # A convex cell clipped by a wobbly outline could fall apart; with this seed none
    # does, and a stray piece would silently break coverage, so refuse rather than drop it.
    assert all(c.geom_type == "Polygon" for c in cells), "disconnected cell: choose another seed"
    return cells


def _reading_order(polys: list[Polygon], row_m: float) -> list[Polygon]:
    return sorted(polys, key=lambda p: (-round(p.centroid.y / row_m), p.centroid.x))


def _community_names(communities: list[Polygon]) -> list[tuple[str, str]]:
    centroids = [c.centroid for c in communities]
    free = list(range(len(communities)))
    picks = []
    for sx, sy in [(0, 1), (0, -1), (1, 0), (-1, 0)]:  # N, S, E, W
        picks.append(max(free, key=lambda ci: sx * centroids[ci].x + sy * centroids[ci].y))
        free.remove(picks[-1])
    order = picks + free
    return [_COMMUNITY_NAMES[order.index(ci)] for ci in range(len(communities))]


def _add_defects(rng: random.Random, grids: dict[str, Polygon]) -> None:
    shrunk, neighbour = DEMO_GAP_GRIDS
    grids[shrunk] = grids[shrunk].difference(grids[neighbour].buffer(_GAP_WIDTH_M))
    small, large = DEMO_OVERLAP_GRIDS
    grids[small] = grids[small].union(grids[large]).intersection(grids[small].buffer(_OVERLAP_DEPTH_M))
    # Centred on a junction of three grids, so each loses a bite and none gets a hole.
    lake = _wobbly(rng, 0, 0, _LAKE_RADIUS_M, 0.8 * _LAKE_RADIUS_M, n=24, wobble=0.1)
    lat, lon = DEMO_OUTSIDE_GRIDS_POINT
    lake = affinity.translate(lake, (lon - _LON0) * _M_PER_DEG_LON, (lat - _LAT0) * _M_PER_DEG_LAT)
    for code, grid in grids.items():
        grids[code] = grid.difference(lake)


def _to_deg(geom):
    return shapely.transform(geom, lambda xy: xy / (_M_PER_DEG_LON, _M_PER_DEG_LAT) + (_LON0, _LAT0))


def _snap_together(regions: list[Polygon], outline: Polygon) -> list[Polygon]:
    """Round all polygons to the output precision as one coverage.

    Rounding each ring on its own nudges a vertex that sits on a neighbour's edge off
    that edge, which shows up as square-metre overlaps. Instead node every boundary
    once on the 1e-6 grid, cut the town into faces, and rebuild each region from the
    faces it mostly covers, so neighbours share identical vertices.
    """
    lines = shapely.union_all([g.boundary for g in [*regions, outline]], grid_size=_GRID_SIZE)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(lines)))
    tree = shapely.STRtree(regions)
    owned: list[list[Polygon]] = [[] for _ in regions]
    for face in faces:
        for i in tree.query(face):
            if regions[i].intersection(face).area > 0.5 * face.area:
                owned[i].append(face)
    merged = [shapely.union_all(parts, grid_size=_GRID_SIZE) for parts in owned]
    for region in merged:
        assert region.geom_type == "Polygon", "snapping split a region"
        assert not region.interiors, "snapping left a hole"
    return merged


def _geojson(poly: Polygon) -> dict:
    ring = orient(poly, 1.0).exterior.coords
    return {"type": "Polygon", "coordinates": [[[round(x, 6), round(y, 6)] for x, y in ring]]}
