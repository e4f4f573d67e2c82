"""Benchmark: vectorize the ESA WorldCover 2021 tile N00E006 (Sao Tome) end to end.

36000 x 36000 pixels (1.3 gigapixels), EPSG:4326, 87% nodata (value 0, mostly ocean), classes
10..100. Prints wall time, megapixels per second, peak RSS and the polygon count; the target is a
peak RSS under 2 GB.

Data: ESA WorldCover project 2021, CC-BY-4.0 (see ../shared/data/README.md).

Usage::

    nice .venv/bin/python benchmarks/vectorize_saotome.py --out /tmp/saotome.gpkg
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import time
from pathlib import Path

from geoseg.models.card import ClassInfo
from geoseg.vectorize import DEFAULT_BLOCK_SIZE, DEFAULT_MIN_AREA_M2, DEFAULT_SIMPLIFY_M

# The WorldCover legend with its official colors; values are used as class ids directly.
WORLDCOVER_CLASSES = (
    ClassInfo(10, "Tree cover", "#006400"),
    ClassInfo(20, "Shrubland", "#ffbb22"),
    ClassInfo(30, "Grassland", "#ffff4c"),
    ClassInfo(40, "Cropland", "#f096ff"),
    ClassInfo(50, "Built-up", "#fa0000"),
    ClassInfo(60, "Bare / sparse vegetation", "#b4b4b4"),
    ClassInfo(70, "Snow and ice", "#f0f0f0"),
    ClassInfo(80, "Permanent water bodies", "#0064c8"),
    ClassInfo(90, "Herbaceous wetland", "#0096a0"),
    ClassInfo(95, "Mangroves", "#00cf75"),
    ClassInfo(100, "Moss and lichen", "#fae6a0"),
)


def shared_data() -> Path:
    env = os.environ.get("GEOSEG_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_map = (
        shared_data() / "worldcover-saotome" / "ESA_WorldCover_10m_2021_v200_N00E006_Map.tif"
    )
    parser.add_argument("--raster", type=Path, default=default_map)
    parser.add_argument("--out", type=Path, default=Path("/tmp/geoseg-bench-saotome.gpkg"))
    parser.add_argument("--min-area", type=float, default=DEFAULT_MIN_AREA_M2)
    parser.add_argument("--simplify", type=float, default=DEFAULT_SIMPLIFY_M)
    parser.add_argument("--block-size", type=int, default=DEFAULT_BLOCK_SIZE)
    parser.add_argument(
        "--report", action="store_true", help="also write the run report and quicklook"
    )
    args = parser.parse_args()
    if not args.raster.exists():
        print(f"skipped: {args.raster} not found (set GEOSEG_SHARED_DATA)")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    from geoseg.io.class_raster import open_class_raster
    from geoseg.vectorize import vectorize_raster

    raster = open_class_raster(args.raster)
    megapixels = raster.width * raster.height / 1e6
    last = [0.0]

    def progress(fraction: float) -> None:
        if fraction - last[0] >= 0.1 or fraction == 1.0:
            last[0] = fraction
            logging.info("%.0f%% of blocks", 100 * fraction)

    start = time.perf_counter()
    result = vectorize_raster(
        args.raster,
        args.out,
        classes=WORLDCOVER_CLASSES,
        min_area_m2=args.min_area,
        simplify_m=args.simplify,
        block_size=args.block_size,
        overwrite=True,
        progress=progress,
    )
    elapsed = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"raster        {args.raster.name} {raster.width}x{raster.height} ({megapixels:.0f} Mpx)")
    print(
        f"settings      min_area {args.min_area} m2 ({result.sieve_pixels} px), "
        f"simplify {args.simplify} m, block {args.block_size}"
    )
    print(f"time          {elapsed:.1f} s")
    print(f"throughput    {megapixels / elapsed:.1f} Mpx/s")
    print(f"peak RSS      {peak_mb:.0f} MiB")
    print(f"polygons      {result.polygon_count}")
    print(f"area          {result.total_area_m2 / 1e6:.1f} km2")
    stages = ", ".join(f"{k} {v:.1f}" for k, v in result.timings_s.items())
    print(f"stages (s)    {stages}")
    print(f"output        {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
    if args.report:
        from geoseg.report import write_run_report

        report = write_run_report(
            args.out, args.raster, result, {"vectorize": elapsed}, overwrite=True
        )
        print(f"report        {report.json_path}, {report.quicklook_path}")
    return 0 if peak_mb < 2048 else 1


if __name__ == "__main__":
    sys.exit(main())
