#!/usr/bin/env bash
# Packs what benchmarks/cuda_check.sh needs on a GPU machine that has python3 3.12 with CUDA
# PyTorch but no registry access and a 64 MiB limit on what travels with the checkout:
#   .devpkg/site.tar.xz  geoseg's geo dependencies as cp312 wheels, unpacked, tests stripped, xz'd
#                        (rasterio 1.4.3 and pyogrio 0.10: their wheels are 14 and 9 MB smaller
#                        than the newest, which keeps the whole under the limit; about 35 MB)
#   .devdata/s2-virginia the nine s2-virginia bands the scenes are built from, zstd level 22 (23 MB)
# Both folders are ignored by git. On the GPU machine, from the checkout:
#   mkdir -p /tmp/site && tar -C /tmp/site -xJf .devpkg/site.tar.xz
#   PYTHONPATH=/tmp/site:$PWD GEOSEG_SHARED_DATA=$PWD/.devdata benchmarks/cuda_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${GEOSEG_SHARED_DATA:-../shared/data}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for ignored in /.devpkg/ /.devdata/; do
    grep -qxF "$ignored" .git/info/exclude 2>/dev/null || echo "$ignored" >>.git/info/exclude
done

python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$TMP/wheels" \
    rasterio==1.4.3 pyogrio==0.10.0 geopandas==1.2.0 pyproj==3.7.2 shapely==2.2.0 affine==3.0.1 \
    cligj==0.7.2 click-plugins==1.1.1.2 segmentation_models_pytorch==0.6.0
mkdir -p "$TMP/site" .devpkg
for wheel in "$TMP"/wheels/*.whl; do unzip -q -o "$wheel" -d "$TMP/site"; done
find "$TMP/site" -type d -name tests -prune -exec rm -rf {} +
find "$TMP/site" \( -name '*.pyx' -o -name '*.pxd' \) -delete
# the x86 filter and a 64 MiB dictionary: the shared libraries shrink by a further 7%
tar -C "$TMP/site" -cf - . | xz --x86 --lzma2=preset=9e,dict=64MiB -T1 >.devpkg/site.tar.xz

mkdir -p .devdata/s2-virginia
.venv/bin/python - "$SHARED/s2-virginia" .devdata/s2-virginia <<'EOF'
import sys
from pathlib import Path

import rasterio

source, target = map(Path, sys.argv[1:])
for band in ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B11", "B12"):
    with rasterio.open(source / f"s2_{band}.tif") as src:
        profile = {**src.profile, "compress": "zstd", "zstd_level": 22, "predictor": 2}
        profile.update(tiled=True, blockxsize=512, blockysize=512)
        with rasterio.open(target / f"s2_{band}.tif", "w", **profile) as dst:
            dst.write(src.read())
EOF
du -sh .devpkg .devdata
