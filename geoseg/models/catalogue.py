"""The classes, legends and input constants the embedded models share.

The embedded models predict Dynamic World v1's nine classes and deliver, by default, geoseg's
five-class land-cover view of them. The per-band constants of Dynamic World's input transform
(published with the model's runner notebook, Apache-2.0; Dynamic World Project by Google with
National Geographic and the World Resources Institute) are the students' constants too, so every
embedded model sees the same function of reflectance.
"""

from __future__ import annotations

from collections.abc import Mapping

from geoseg.models.card import CLASS_MEANINGS as CLASS_MEANINGS  # re-exported
from geoseg.models.card import LANDCOVER_CLASSES, ClassInfo, Legend, ModelCard, Normalization

#: Dynamic World v1 classes in logit order, with the palette Dynamic World publishes.
DYNAMIC_WORLD_CLASSES: tuple[ClassInfo, ...] = (
    ClassInfo(0, "water", "#419bdf"),
    ClassInfo(1, "trees", "#397d49"),
    ClassInfo(2, "grass", "#88b053"),
    ClassInfo(3, "flooded_vegetation", "#7a87c6"),
    ClassInfo(4, "crops", "#e49635"),
    ClassInfo(5, "shrub_and_scrub", "#dfc35a"),
    ClassInfo(6, "built", "#c4281b"),
    ClassInfo(7, "bare", "#a59b8f"),
    ClassInfo(8, "snow_and_ice", "#b39fe1"),
)

#: geoseg's five-class view of Dynamic World's nine classes (grass joins crops as farmland).
LANDCOVER_VIEW = Legend(
    name="landcover",
    classes=LANDCOVER_CLASSES,
    groups=(
        ("built",),
        ("water",),
        ("trees",),
        ("crops", "grass"),
        ("shrub_and_scrub", "bare", "flooded_vegetation", "snow_and_ice"),
    ),
    description="urban, water, forest, farmland, other (geoseg's five classes)",
)

#: Dynamic World's bands, by STAC common name, in its input order.
DYNAMIC_WORLD_BANDS = (
    "blue",
    "green",
    "red",
    "rededge1",
    "rededge2",
    "rededge3",
    "nir",
    "swir16",
    "swir22",
)

# Mean and standard deviation of log(1 + 50 * reflectance) per band (Dynamic World's constants,
# stated for Sentinel-2 values x 10000 as log(1 + 0.005 * value): the same numbers).
_LOG_CONSTANTS: dict[str, tuple[float, float]] = {
    "blue": (1.7417268007636313, 2.023298706048351),
    "green": (1.7261204997060209, 2.038905204308012),
    "red": (1.6798346251414997, 2.179592821212937),
    "rededge1": (1.7734969472909623, 2.2890068333026603),
    "rededge2": (2.289154079164943, 2.6171674549378166),
    "rededge3": (2.382939712192371, 2.773418590375327),
    "nir": (2.3828939530384052, 2.7578332604178284),
    "swir16": (2.1952484264967844, 2.789092484314204),
    "swir22": (1.554812948247501, 2.4140534947492487),
}


def dynamic_world_normalization(bands: tuple[str, ...]) -> Normalization:
    """Dynamic World's log-sigmoid input transform for ``bands`` (a subset of its nine).

    >>> dynamic_world_normalization(("red", "nir")).mean
    (1.6798346251414997, 2.3828939530384052)
    """
    return Normalization(
        method="log_sigmoid",
        mean=tuple(_LOG_CONSTANTS[b][0] for b in bands),
        std=tuple(_LOG_CONSTANTS[b][1] for b in bands),
        log_gain=50.0,
        sigmoid_scale=5.0,
        sigmoid_offset=-1.0,
    )


DYNAMIC_WORLD_NOTICE = (
    "Dynamic World v1 forward network, Apache-2.0. This code is produced for the Dynamic World "
    "Project by Google in partnership with National Geographic and the World Resources Institute."
)


def dynamic_world_card() -> ModelCard:
    """The card of ``landcover-s2-dw``: Dynamic World v1 as a geoseg model."""
    return ModelCard(
        name="landcover-s2-dw",
        architecture="dynamic_world",
        bands=DYNAMIC_WORLD_BANDS,
        classes=DYNAMIC_WORLD_CLASSES,
        gsd=10.0,
        normalization=dynamic_world_normalization(DYNAMIC_WORLD_BANDS),
        tile_size=512,
        overlap=64,
        legends=(LANDCOVER_VIEW,),
        default_legend="landcover",
        reflectance_level="toa",
        description=(
            "Google's Dynamic World v1 network (231k parameters, depthwise-separable "
            "convolutions), converted to PyTorch by geoseg: nine classes from Sentinel-2 "
            "top-of-atmosphere or surface reflectance in nine bands (blue, green, red, the "
            "three red-edge bands B05-B07, nir, swir16, swir22) at 10 m; the five-class "
            "land-cover view by default (--legend full for the nine classes). Trained by "
            "Google on a global set of hand-labelled Sentinel-2 tiles."
        ),
        training={
            "data": "Dynamic World v1 training set (Google; global, hand-labelled Sentinel-2)",
            "licence": "Apache-2.0 (weights and architecture); see NOTICE below",
            "notice": DYNAMIC_WORLD_NOTICE,
            "source": "dynamic-world-model/forward (TensorFlow SavedModel), converted with "
            "scripts/convert_dynamic_world.py",
            "command": "python scripts/convert_dynamic_world.py DYNAMIC_WORLD_DIR "
            "geoseg/models/weights/landcover-s2-dw.pt",
        },
    )


#: ESA WorldCover v1/v2 legend with its official colors (ESA WorldCover, CC-BY 4.0).
WORLDCOVER_CLASSES: tuple[ClassInfo, ...] = (
    ClassInfo(10, "tree cover", "#006400"),
    ClassInfo(20, "shrubland", "#ffbb22"),
    ClassInfo(30, "grassland", "#ffff4c"),
    ClassInfo(40, "cropland", "#f096ff"),
    ClassInfo(50, "built-up", "#fa0000"),
    ClassInfo(60, "bare / sparse vegetation", "#b4b4b4"),
    ClassInfo(70, "snow and ice", "#f0f0f0"),
    ClassInfo(80, "permanent water bodies", "#0064c8"),
    ClassInfo(90, "herbaceous wetland", "#0096a0"),
    ClassInfo(95, "mangroves", "#00cf75"),
    ClassInfo(100, "moss and lichen", "#fae6a0"),
)


def known_legend(tags: Mapping[str, str]) -> tuple[tuple[ClassInfo, ...], str] | None:
    """The fixed legend of a well-known land-cover product, recognised from a raster's tags.

    ESA WorldCover (its ``title``/``product_type`` tags) and Dynamic World labels (a ``classes``
    tag of the form ``0=water,1=trees,...``, as Dynamic World exports and geoseg's teacher
    rasters carry) get their published names and colors.

    >>> known_legend({"title": "ESA WorldCover product at 10m resolution for year 2021"})[1]
    'ESA WorldCover'
    >>> known_legend({"classes": "0=water,1=trees,2=grass"})[0][1].color
    '#397d49'
    """
    title = " ".join(str(tags.get(k, "")) for k in ("title", "product_type", "reference"))
    if "worldcover" in title.lower():
        return WORLDCOVER_CLASSES, "ESA WorldCover"
    text = str(tags.get("classes", ""))
    pairs = [item.partition("=") for item in text.split(",") if "=" in item]
    if pairs and all(key.strip().isdigit() for key, _, _ in pairs):
        named = {int(key): value.strip() for key, _, value in pairs}
        dynamic_world = {c.name: c for c in DYNAMIC_WORLD_CLASSES}
        if all(dynamic_world.get(name) is not None for name in named.values()):
            classes = tuple(
                ClassInfo(value, name, dynamic_world[name].color) for value, name in named.items()
            )
            return classes, "Dynamic World"
    return None
