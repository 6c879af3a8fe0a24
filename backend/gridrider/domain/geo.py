"""Geometry in WGS-84 degrees: polygon areas and distances in metres through a local projection."""

from __future__ import annotations

import math

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

EARTH_RADIUS_M = 6_371_008.8
M_PER_DEG_LAT = 111_320.0


def geometry_of(geojson: dict) -> BaseGeometry:
    return shape(geojson)


def bbox_of(geom: BaseGeometry) -> list[float]:
    """[min_lon, min_lat, max_lon, max_lat]."""
    return [float(v) for v in geom.bounds]


def area_m2(geom: BaseGeometry) -> float:
    """Area in square metres; an equirectangular projection at the centroid is exact enough for a city grid."""
    centroid = geom.centroid
    scale_lon = M_PER_DEG_LAT * math.cos(math.radians(centroid.y))
    return float(shapely.area(shapely.transform(geom, lambda xy: xy * [scale_lon, M_PER_DEG_LAT])))


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


H3_RESOLUTION = 9  # cells of ~0.1 km²: merge radii (25–150 m) touch a handful of them


def cell_of(lat: float, lon: float) -> int:
    """The H3 cell (resolution 9) of a point, as the bigint stored in `cell` columns."""
    import h3

    return h3.str_to_int(h3.latlng_to_cell(lat, lon, H3_RESOLUTION))
