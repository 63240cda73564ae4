"""The layer schema shared by OSM tiles and sketch maps: one raster channel per layer.

The order of :data:`LAYERS` is the channel order of every rendered tile and rasterized sketch
map (C = ``len(LAYERS)``). Each layer has a geometry kind that decides how it is drawn:
``area`` layers are filled polygons, ``line`` layers are stroked with ``width_m`` metres,
``point`` layers are discs of ``width_m`` metres diameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GeometryKind = Literal["area", "line", "point"]


@dataclass(frozen=True)
class Layer:
    name: str
    kind: GeometryKind
    width_m: float
    """Stroke width (lines) or disc diameter (points) in metres; 0 for areas."""
    rgb: tuple[int, int, int]
    """Colour in the RGB map style (thumbnails, offline basemap)."""
    description: str


LAYERS: tuple[Layer, ...] = (
    Layer("building", "area", 0, (196, 160, 140), "building=*"),
    Layer("major_road", "line", 12, (250, 200, 110), "highway=motorway|trunk|primary|secondary (+_link)"),
    Layer("minor_road", "line", 7, (255, 255, 255), "highway=tertiary|residential|unclassified|service|living_street|road"),
    Layer("path", "line", 3, (240, 128, 114), "highway=footway|path|cycleway|pedestrian|steps|track|bridleway"),
    Layer("railway", "line", 4, (120, 120, 120), "railway=rail|light_rail|tram|subway|narrow_gauge"),
    Layer("water", "area", 0, (170, 211, 223), "natural=water|bay, water=*, waterway=riverbank, landuse=reservoir|basin"),
    Layer("waterway", "line", 6, (120, 170, 220), "waterway=river|stream|canal|drain|ditch"),
    Layer("park", "area", 0, (200, 250, 204), "leisure=park|garden|pitch|golf_course, landuse=grass|recreation_ground|meadow|village_green"),
    Layer("forest", "area", 0, (173, 209, 158), "landuse=forest, natural=wood|scrub"),
    Layer("farmland", "area", 0, (238, 240, 213), "landuse=farmland|farmyard|orchard|vineyard|allotments"),
    Layer("residential", "area", 0, (224, 223, 223), "landuse=residential"),
    Layer("commercial", "area", 0, (242, 218, 217), "landuse=commercial|retail"),
    Layer("industrial", "area", 0, (235, 219, 232), "landuse=industrial|quarry|port|railway"),
    Layer("amenity", "point", 10, (180, 80, 60), "amenity=* or shop=* (points, or centroids of tagged areas)"),
)

LAYER_NAMES: tuple[str, ...] = tuple(layer.name for layer in LAYERS)
LAYER_INDEX: dict[str, int] = {name: i for i, name in enumerate(LAYER_NAMES)}
NUM_LAYERS = len(LAYERS)

LAND_USE_LAYERS: tuple[str, ...] = ("water", "park", "forest", "farmland", "residential", "commercial", "industrial")
"""Layers that count as land use when labelling a tile by its dominant land use."""

LABEL_MIN_FRACTION = 0.2
"""A tile's dominant land use counts as its label only if it covers at least this share of the tile."""


def layer(name: str) -> Layer:
    """The layer called ``name``; the error lists the valid names."""
    try:
        return LAYERS[LAYER_INDEX[name]]
    except KeyError:
        raise ValueError(f"unknown layer {name!r}; layers are: {', '.join(LAYER_NAMES)}") from None
