"""Reading the product metadata that lies beside a scene (Landsat ``*_MTL.txt``).

Only files are read here; what the values mean is :mod:`geoseg.radiometry`'s business.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def parse_mtl(text: str) -> dict[str, str]:
    r"""Parse Landsat ODL metadata into ``{key: value}``.

    Each key appears qualified by its innermost group (``"GROUP/KEY"``) and bare (its first
    occurrence), so Level-2 files, which hold Level-1 and Level-2 gains under the same names,
    stay unambiguous.

    >>> text = 'GROUP = A\n X = 1\nEND_GROUP = A\nGROUP = B\n X = "2"\nEND_GROUP = B'
    >>> mtl = parse_mtl(text)
    >>> mtl["X"], mtl["A/X"], mtl["B/X"]
    ('1', '1', '2')
    """
    values: dict[str, str] = {}
    groups: list[str] = []
    for line in text.splitlines():
        if "=" not in line:
            continue
        key, _, value = (part.strip() for part in line.partition("="))
        if key == "GROUP":
            groups.append(value)
        elif key == "END_GROUP":
            if groups:
                groups.pop()
        else:
            value = value.strip('"')
            values.setdefault(key, value)
            if groups:
                values[f"{groups[-1]}/{key}"] = value
    return values


def find_landsat_mtl(scene_path: str) -> Path | None:
    """The ``*_MTL.txt`` beside a scene that belongs to it, if any.

    The MTL whose product id starts the scene's file name wins; otherwise the only MTL in the
    folder is taken (its extent is checked against the scene's by the caller). Archive members
    (``/vsizip/``) and URLs have no neighbours to look at.
    """
    if scene_path.startswith("/vsi") or "://" in scene_path:
        return None
    path = Path(scene_path)
    try:
        candidates = sorted(path.parent.glob("*_MTL.txt"))
    except OSError:
        return None
    for mtl in candidates:
        if path.name.upper().startswith(mtl.name[: -len("_MTL.txt")].upper()):
            return mtl
    return candidates[0] if len(candidates) == 1 else None


def read_landsat_mtl(scene_path: str) -> tuple[dict[str, str], str] | None:
    """The parsed MTL beside a scene and its file name, or ``None``."""
    mtl = find_landsat_mtl(scene_path)
    if mtl is None:
        return None
    try:
        text = mtl.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        log.warning("cannot read %s (%s): ignoring it", mtl, exc.strerror or exc)
        return None
    return parse_mtl(text), mtl.name


def find_landsat_qa(scene_path: str) -> Path | None:
    """The Landsat Collection 2 ``*_QA_PIXEL.TIF`` beside a scene that belongs to it, if any.

    It belongs to the scene when its product id (the name before ``_QA_PIXEL``) starts the
    scene's file name, as for ``LC08_L2SP_..._T1_SR_B2.TIF`` or a stack named after the product.
    """
    if scene_path.startswith("/vsi") or "://" in scene_path:
        return None
    path = Path(scene_path)
    try:
        candidates = sorted(path.parent.iterdir())
    except OSError:
        return None
    for candidate in candidates:
        name = candidate.name
        if not name.upper().endswith(("_QA_PIXEL.TIF", "_QA_PIXEL.TIFF")) or candidate == path:
            continue
        product = name[: name.upper().index("_QA_PIXEL")]
        if path.name.upper().startswith(product.upper()):
            return candidate
    return None
