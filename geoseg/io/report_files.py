"""Writing run-report files (JSON and PNG) atomically, beside the run's other outputs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from geoseg.errors import OutputError
from geoseg.io.atomic import atomic_output


def write_json(path: Path, data: Mapping[str, Any], overwrite: bool) -> None:
    """Write ``data`` as indented UTF-8 JSON to ``path`` (atomically).

    Raises
    ------
    OutputError
        If ``path`` exists without ``overwrite`` or cannot be written.
    """
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
    with atomic_output(path, overwrite) as tmp:
        try:
            tmp.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc


def save_figure(figure: Any, path: Path, overwrite: bool, dpi: int = 100) -> None:
    """Save a matplotlib ``Figure`` as PNG to ``path`` (atomically).

    Raises
    ------
    OutputError
        If ``path`` exists without ``overwrite`` or cannot be written.
    """
    with atomic_output(path, overwrite) as tmp:
        try:
            figure.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
