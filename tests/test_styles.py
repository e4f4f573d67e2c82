"""QML and SLD builders: a categorized renderer naming every class with its color."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from geoseg.models.card import LANDCOVER_CLASSES, ClassInfo
from geoseg.styles import landcover_style, qml_categorized, sld_categorized

SE = "{http://www.opengis.net/se}"
OGC = "{http://www.opengis.net/ogc}"


def qml_categories(qml: str) -> dict[str, tuple[str, str]]:
    """``{value: (label, 'r,g,b,a')}`` of a categorized QML renderer."""
    root = ET.fromstring(qml.split("\n", 1)[1])  # skip the DOCTYPE line
    renderer = root.find("renderer-v2")
    assert renderer is not None
    assert renderer.get("type") == "categorizedSymbol"
    assert renderer.get("attr") == "class_id"
    symbols = {s.get("name"): s for s in renderer.iter("symbol")}
    out = {}
    for category in renderer.iter("category"):
        symbol = symbols[category.get("symbol")]
        layer = symbol.find("layer")
        assert layer is not None and layer.get("class") == "SimpleFill"
        options = {o.get("name"): o.get("value") for o in layer.iter("Option") if o.get("name")}
        props = {p.get("k"): p.get("v") for p in layer.iter("prop")}
        assert options["color"] == props["color"]  # both QGIS 3 property forms agree
        out[str(category.get("value"))] = (str(category.get("label")), str(options["color"]))
    return out


def test_qml_names_every_class_with_its_color() -> None:
    categories = qml_categories(qml_categorized(LANDCOVER_CLASSES))
    assert categories == {
        str(c.id): (c.name, "{},{},{},255".format(*c.rgb)) for c in LANDCOVER_CLASSES
    }


def test_names_are_escaped() -> None:
    odd = (ClassInfo(7, 'roads & "rails" <paved>', "#010203"),)
    assert qml_categories(qml_categorized(odd)) == {"7": ('roads & "rails" <paved>', "1,2,3,255")}
    root = ET.fromstring(sld_categorized(odd))
    assert root.find(f".//{SE}Rule/{SE}Name").text == 'roads & "rails" <paved>'  # type: ignore[union-attr]


def test_sld_has_one_rule_per_class_filtering_on_the_id() -> None:
    root = ET.fromstring(sld_categorized(LANDCOVER_CLASSES, "landcover"))
    assert root.get("version") == "1.1.0"
    rules = list(root.iter(f"{SE}Rule"))
    assert len(rules) == len(LANDCOVER_CLASSES)
    for rule, info in zip(rules, LANDCOVER_CLASSES, strict=True):
        equal = rule.find(f"{OGC}Filter/{OGC}PropertyIsEqualTo")
        assert equal is not None
        assert equal.findtext(f"{OGC}PropertyName") == "class_id"
        assert equal.findtext(f"{OGC}Literal") == str(info.id)
        fill = rule.find(f"{SE}PolygonSymbolizer/{SE}Fill/{SE}SvgParameter")
        assert fill is not None and fill.get("name") == "fill" and fill.text == info.color


def test_landcover_style_bundles_both() -> None:
    style = landcover_style(LANDCOVER_CLASSES)
    assert style.qml.startswith("<!DOCTYPE qgis")
    assert style.sld.startswith("<?xml")
    assert "landcover" in style.name and style.description
