"""Default map styles for the land-cover layer: QGIS QML and OGC SLD, built from the classes.

Pure functions from a tuple of :class:`~geoseg.models.card.ClassInfo` to text; writing the text
into a GeoPackage's ``layer_styles`` table is :mod:`geoseg.io.geopackage`'s job. Both documents are
built with :mod:`xml.etree.ElementTree`, so class names are always escaped correctly.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from geoseg.core import ClassInfo

#: The attribute the categorized renderer classifies on.
CLASS_FIELD = "class_id"

_QML_DOCTYPE = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
_SLD_NS = "http://www.opengis.net/sld"
_SE_NS = "http://www.opengis.net/se"
_OGC_NS = "http://www.opengis.net/ogc"
_XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"


@dataclass(frozen=True)
class LayerStyle:
    """A named style in both formats QGIS stores in ``layer_styles``.

    Parameters
    ----------
    name : str
        Style name shown in QGIS's style manager.
    qml : str
        QGIS native style document.
    sld : str
        OGC Styled Layer Descriptor 1.1 document (for other clients, e.g. GeoServer).
    description : str
        One line shown beside the name.
    """

    name: str
    qml: str
    sld: str
    description: str = ""


def landcover_style(
    classes: Sequence[ClassInfo], layer_name: str = "landcover", field: str = CLASS_FIELD
) -> LayerStyle:
    """Both documents of the default style, categorized on ``field`` with one class per category.

    Parameters
    ----------
    classes : sequence of ClassInfo
        Classes in legend order.
    layer_name : str
        Layer the SLD names.
    field : str
        Integer attribute holding the class id.

    Returns
    -------
    LayerStyle
        The style, ready to store.

    Examples
    --------
    >>> from geoseg.models.card import LANDCOVER_CLASSES
    >>> style = landcover_style(LANDCOVER_CLASSES)
    >>> 'label="water"' in style.qml and "#2b83ba" in style.sld
    True
    """
    return LayerStyle(
        name=f"{layer_name} (geoseg default)",
        qml=qml_categorized(classes, field),
        sld=sld_categorized(classes, layer_name, field),
        description="Categorized by class_id with the model's class names and colours",
    )


def qml_categorized(classes: Sequence[ClassInfo], field: str = CLASS_FIELD) -> str:
    """QGIS QML with a categorized renderer: one solid fill per class, labelled by its name.

    The fill's outline uses the fill color so that anti-aliasing never shows hairlines between
    neighbouring polygons of one class. Symbol properties are written both as ``<Option>`` maps
    (QGIS >= 3.10 reads these) and as ``<prop>`` pairs (older 3.x), so any QGIS 3 reads them.

    Parameters
    ----------
    classes : sequence of ClassInfo
        Classes in legend order.
    field : str
        Attribute classified on.

    Returns
    -------
    str
        The QML document.
    """
    root = ET.Element(
        "qgis",
        {"version": "3.22.0", "styleCategories": "Symbology", "hasScaleBasedVisibility": "0"},
    )
    renderer = ET.SubElement(
        root,
        "renderer-v2",
        {
            "type": "categorizedSymbol",
            "attr": field,
            "forceraster": "0",
            "symbollevels": "0",
            "enableorderby": "0",
            "referencescale": "-1",
        },
    )
    categories = ET.SubElement(renderer, "categories")
    symbols = ET.SubElement(renderer, "symbols")
    for index, info in enumerate(classes):
        ET.SubElement(
            categories,
            "category",
            {
                "symbol": str(index),
                "value": str(info.id),
                "type": "integer",
                "label": info.name,
                "render": "true",
            },
        )
        _qml_fill_symbol(symbols, str(index), info)
    ET.SubElement(root, "blendMode").text = "0"
    ET.SubElement(root, "featureBlendMode").text = "0"
    ET.SubElement(root, "layerOpacity").text = "1"
    ET.indent(root)
    return _QML_DOCTYPE + ET.tostring(root, encoding="unicode") + "\n"


def qml_paletted(classes: Sequence[ClassInfo]) -> str:
    """QGIS QML for a class raster: a paletted renderer with one entry per class, labelled.

    QGIS loads ``NAME.qml`` beside ``NAME.tif`` as the raster's default style, so the legend
    lists the classes by name instead of the 256 rows of a GeoTIFF color table.

    >>> from geoseg.core import ClassInfo
    >>> 'label="water"' in qml_paletted((ClassInfo(1, "water", "#2b83ba"),))
    True
    """
    root = ET.Element(
        "qgis",
        {"version": "3.22.0", "styleCategories": "Symbology", "hasScaleBasedVisibility": "0"},
    )
    pipe = ET.SubElement(root, "pipe")
    renderer = ET.SubElement(
        pipe,
        "rasterrenderer",
        {"type": "paletted", "band": "1", "opacity": "1", "alphaBand": "-1", "nodataColor": ""},
    )
    ET.SubElement(renderer, "rasterTransparency")
    palette = ET.SubElement(renderer, "colorPalette")
    for info in classes:
        ET.SubElement(
            palette,
            "paletteEntry",
            {"value": str(info.id), "color": info.color, "alpha": "255", "label": info.name},
        )
    ET.SubElement(pipe, "brightnesscontrast", {"brightness": "0", "contrast": "0", "gamma": "1"})
    ET.SubElement(
        pipe,
        "huesaturation",
        {"saturation": "0", "grayscaleMode": "0", "colorizeOn": "0", "invertColors": "0"},
    )
    ET.SubElement(pipe, "rasterresampler", {"maxOversampling": "2"})
    ET.SubElement(root, "blendMode").text = "0"
    ET.indent(root)
    return _QML_DOCTYPE + ET.tostring(root, encoding="unicode") + "\n"


def _qml_fill_symbol(parent: ET.Element, name: str, info: ClassInfo) -> None:
    r, g, b = info.rgb
    rgba = f"{r},{g},{b},255"
    props = {
        "color": rgba,
        "style": "solid",
        "outline_color": rgba,
        "outline_style": "solid",
        "outline_width": "0.1",
        "outline_width_unit": "MM",
        "joinstyle": "bevel",
        "border_width_map_unit_scale": "3x:0,0,0,0,0,0",
        "offset": "0,0",
        "offset_unit": "MM",
    }
    symbol = ET.SubElement(
        parent,
        "symbol",
        {
            "type": "fill",
            "name": name,
            "alpha": "1",
            "clip_to_extent": "1",
            "force_rhr": "0",
            "frame_rate": "10",
            "is_animated": "0",
        },
    )
    layer = ET.SubElement(
        symbol, "layer", {"class": "SimpleFill", "pass": "0", "locked": "0", "enabled": "1"}
    )
    options = ET.SubElement(layer, "Option", {"type": "Map"})
    for key, value in props.items():
        ET.SubElement(options, "Option", {"name": key, "value": value, "type": "QString"})
    for key, value in props.items():
        ET.SubElement(layer, "prop", {"k": key, "v": value})


def sld_categorized(
    classes: Sequence[ClassInfo], layer_name: str = "landcover", field: str = CLASS_FIELD
) -> str:
    """OGC SLD 1.1 with one rule per class (``field`` equal to the class id).

    Parameters
    ----------
    classes : sequence of ClassInfo
        Classes in legend order.
    layer_name : str
        The ``NamedLayer`` name.
    field : str
        Attribute compared in each rule's filter.

    Returns
    -------
    str
        The SLD document.
    """
    ET.register_namespace("", _SLD_NS)
    ET.register_namespace("se", _SE_NS)
    ET.register_namespace("ogc", _OGC_NS)
    ET.register_namespace("xsi", _XSI_NS)
    root = ET.Element(
        f"{{{_SLD_NS}}}StyledLayerDescriptor",
        {
            "version": "1.1.0",
            f"{{{_XSI_NS}}}schemaLocation": (
                "http://www.opengis.net/sld "
                "http://schemas.opengis.net/sld/1.1.0/StyledLayerDescriptor.xsd"
            ),
        },
    )
    layer = ET.SubElement(root, f"{{{_SLD_NS}}}NamedLayer")
    ET.SubElement(layer, f"{{{_SE_NS}}}Name").text = layer_name
    user_style = ET.SubElement(layer, f"{{{_SLD_NS}}}UserStyle")
    ET.SubElement(user_style, f"{{{_SE_NS}}}Name").text = layer_name
    feature_style = ET.SubElement(user_style, f"{{{_SE_NS}}}FeatureTypeStyle")
    for info in classes:
        rule = ET.SubElement(feature_style, f"{{{_SE_NS}}}Rule")
        ET.SubElement(rule, f"{{{_SE_NS}}}Name").text = info.name
        description = ET.SubElement(rule, f"{{{_SE_NS}}}Description")
        ET.SubElement(description, f"{{{_SE_NS}}}Title").text = info.name
        filt = ET.SubElement(rule, f"{{{_OGC_NS}}}Filter")
        equal = ET.SubElement(filt, f"{{{_OGC_NS}}}PropertyIsEqualTo")
        ET.SubElement(equal, f"{{{_OGC_NS}}}PropertyName").text = field
        ET.SubElement(equal, f"{{{_OGC_NS}}}Literal").text = str(info.id)
        symbolizer = ET.SubElement(rule, f"{{{_SE_NS}}}PolygonSymbolizer")
        fill = ET.SubElement(symbolizer, f"{{{_SE_NS}}}Fill")
        ET.SubElement(fill, f"{{{_SE_NS}}}SvgParameter", {"name": "fill"}).text = info.color
        stroke = ET.SubElement(symbolizer, f"{{{_SE_NS}}}Stroke")
        ET.SubElement(stroke, f"{{{_SE_NS}}}SvgParameter", {"name": "stroke"}).text = info.color
        ET.SubElement(stroke, f"{{{_SE_NS}}}SvgParameter", {"name": "stroke-width"}).text = "0.5"
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
