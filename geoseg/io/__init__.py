"""The I/O layer: the only code that opens raster, vector and model files.

GDAL's block cache defaults to 5% of RAM and fills up to that size on any large scene (a strip is
decoded once and never needed again), so peak memory would grow with the scene until the cap. It is
bounded here, before GDAL first uses it, unless the user set ``GDAL_CACHEMAX`` themselves.
"""

import os

GDAL_CACHE_MB = 64  # reads are block-aligned: a decoded block is never needed twice
os.environ.setdefault("GDAL_CACHEMAX", str(GDAL_CACHE_MB))
