"""Manual check in real QGIS: a geoseg GeoPackage opens styled and valid, and renders.

Run with the *system* Python that has QGIS's bindings (Debian: ``apt-get install python3-qgis``),
headless::

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 benchmarks/qgis_check.py OUT.gpkg OUT.png \
        [xmin,ymin,xmax,ymax]

Prints the layer's renderer and its categories (value, label, color), counts features whose
geometry GEOS finds invalid, and renders the layer with its default style to a PNG.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    """Load, inspect and render the ``landcover`` layer; return 0 if styled and valid."""
    from qgis.core import (
        Qgis,
        QgsApplication,
        QgsMapRendererParallelJob,
        QgsMapSettings,
        QgsRectangle,
        QgsVectorLayer,
    )
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    gpkg, png = argv[1], argv[2]
    app = QgsApplication([], False)
    app.initQgis()
    try:
        layer = QgsVectorLayer(f"{gpkg}|layername=landcover", "landcover", "ogr")
        print(f"QGIS {Qgis.QGIS_VERSION}: valid layer {layer.isValid()}")
        print(f"features {layer.featureCount()}, CRS {layer.crs().authid()}")
        renderer = layer.renderer()
        categorized = renderer.type() == "categorizedSymbol"
        print(
            f"renderer {renderer.type()}"
            + (f" on {renderer.classAttribute()}" if categorized else "")
        )
        if categorized:
            for category in renderer.categories():
                color = category.symbol().color().name()
                print(f"  {category.value()!s:>4} {category.label():<28} {color}")
        invalid = sum(1 for f in layer.getFeatures() if not f.geometry().isGeosValid())
        print(f"invalid geometries {invalid}")
        extent = layer.extent()
        if len(argv) > 3:
            extent = QgsRectangle(*(float(v) for v in argv[3].split(",")))
        settings = QgsMapSettings()
        settings.setLayers([layer])
        settings.setDestinationCrs(layer.crs())
        settings.setExtent(extent)
        settings.setOutputSize(QSize(900, 900))
        settings.setBackgroundColor(QColor("white"))
        job = QgsMapRendererParallelJob(settings)
        job.start()
        job.waitForFinished()
        job.renderedImage().save(png, "PNG")
        print(f"rendered {png}")
        return 0 if categorized and invalid == 0 and layer.isValid() else 1
    finally:
        app.exitQgis()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
