"""Which grid a point belongs to (DESIGN.md §2 step 3).

The grid polygon containing the point; overlapping grids → the smallest; in a gap → the nearest
grid within 30 m; otherwise no grid, and the incident is `unrouted` for the supervisors of the
smallest area containing the point (or of the county, when it lies outside every polygon).

Polygons live in an STRtree held in process, in a local metric projection (metres east/north of
the index's mean latitude), so containment and the 30 m rule are plain planar geometry.
"""

from __future__ import annotations

import math

import msgspec
import shapely
from shapely.geometry import shape
from shapely.strtree import STRtree

from gridrider.domain.geo import M_PER_DEG_LAT

GAP_TOLERANCE_M = 30.0


class AreaShape(msgspec.Struct, frozen=True):
    id: int
    code: str
    level: str
    polygon: dict | None
    area_m2: float | None


class Route(msgspec.Struct, frozen=True):
    grid_id: int | None  # the grid that gets the incident, or None (unrouted)
    owner_area_id: int | None  # unrouted: the area whose supervisors own it
    how: str  # inside | overlap | gap | unrouted


class _Layer:
    """One STRtree over a set of areas, with their areas in m² for 'smallest wins'."""

    def __init__(self, areas: list[AreaShape], project) -> None:
        self.ids = [a.id for a in areas]
        self.geoms = [project(shape(a.polygon)) for a in areas]
        for geom in self.geoms:
            shapely.prepare(geom)
        self.sizes = [float(g.area) for g in self.geoms]
        self.tree = STRtree(self.geoms) if self.geoms else None

    def containing(self, point) -> list[int]:
        """Indices of areas that contain the point (boundary included), smallest first."""
        if self.tree is None:
            return []
        hits = [int(i) for i in self.tree.query(point, predicate="intersects")]
        return sorted(hits, key=lambda i: self.sizes[i])

    def nearest_within(self, point, distance_m: float) -> int | None:
        if self.tree is None:
            return None
        hits = [int(i) for i in self.tree.query(point, predicate="dwithin", distance=distance_m)]
        if not hits:
            return None
        return min(hits, key=lambda i: (self.geoms[i].distance(point), self.sizes[i]))


class AreaIndex:
    """Grids and their enclosing areas, built once per process and rebuilt when areas change."""

    def __init__(self, areas: list[AreaShape], version: object = None) -> None:
        self.version = version
        with_polygons = [a for a in areas if a.polygon]
        lats = [shape(a.polygon).centroid.y for a in with_polygons] or [0.0]
        self._lat0 = sum(lats) / len(lats)
        self._m_per_deg_lon = M_PER_DEG_LAT * math.cos(math.radians(self._lat0))
        self.grids = _Layer([a for a in with_polygons if a.level == "grid"], self._project)
        self.enclosing = _Layer([a for a in with_polygons if a.level != "grid"], self._project)
        counties = [a for a in areas if a.level == "county"]
        # A point outside every polygon still belongs to someone: the only county, or none to guess.
        self._fallback_county = counties[0].id if len(counties) == 1 else None
        self._county_layer = _Layer([a for a in counties if a.polygon], self._project)

    def _project(self, geom):
        return shapely.transform(geom, lambda xy: xy * [self._m_per_deg_lon, M_PER_DEG_LAT])

    def _point(self, lat: float, lon: float):
        return shapely.Point(lon * self._m_per_deg_lon, lat * M_PER_DEG_LAT)

    def route(self, lat: float, lon: float) -> Route:
        point = self._point(lat, lon)
        inside = self.grids.containing(point)
        if inside:
            return Route(grid_id=self.grids.ids[inside[0]], owner_area_id=None,
                         how="overlap" if len(inside) > 1 else "inside")
        near = self.grids.nearest_within(point, GAP_TOLERANCE_M)
        if near is not None:
            return Route(grid_id=self.grids.ids[near], owner_area_id=None, how="gap")
        enclosing = self.enclosing.containing(point)
        if enclosing:
            return Route(grid_id=None, owner_area_id=self.enclosing.ids[enclosing[0]], how="unrouted")
        county = self._county_layer.nearest_within(point, math.inf) if self._county_layer.tree else None
        owner = self._county_layer.ids[county] if county is not None else self._fallback_county
        return Route(grid_id=None, owner_area_id=owner, how="unrouted")
