"""Reading and writing geoseg model files.

A model file is one ``torch.save`` archive holding a format marker, the model card (plain JSON-able
data) and the weights. This module trades the card as that plain data only: building and checking
a :class:`~geoseg.models.card.ModelCard` is :mod:`geoseg.models.loading`'s job, so ``io`` never
imports ``models``. Floating-point weights of large models are stored as float16, which halves
the file and is loaded back to float32; small models (under :data:`HALF_ABOVE` values, e.g.
Dynamic World's 231k) keep float32, where halving would save little and cost agreement with the
original. Files are loaded with ``weights_only=True`` so a model file can never run code.
"""

from __future__ import annotations

import hashlib
import io as _io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from geoseg.errors import ModelError
from geoseg.io.atomic import atomic_output

FORMAT = "geoseg-model"
FORMAT_VERSION = 1
#: Models with more floating-point values than this store them as float16.
HALF_ABOVE = 2_000_000


def write_model_file(
    path: str | Path, card: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]
) -> str:
    """Write a model file atomically and return its SHA-256.

    Parameters
    ----------
    path : str or Path
        Destination; replaced if it exists.
    card : Mapping
        The model's self-description as plain data (``ModelCard.to_dict()``).
    state_dict : Mapping[str, torch.Tensor]
        The network's weights.
    """
    values = sum(v.numel() for v in state_dict.values() if v.is_floating_point())
    half = values > HALF_ABOVE
    # contiguous: a file holds the same bytes whatever memory format the network trained in
    weights = {
        k: (
            v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu()
        ).contiguous()
        for k, v in state_dict.items()
    }
    buffer = _io.BytesIO()
    torch.save(
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "card": dict(card),
            "state_dict": weights,
        },
        buffer,
    )
    payload = buffer.getvalue()
    with atomic_output(Path(path), overwrite=True) as tmp:
        tmp.write_bytes(payload)
    return hashlib.sha256(payload).hexdigest()


def read_model_file(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], str]:
    """Read a model file.

    Returns
    -------
    card : dict
        The card as plain data, for ``ModelCard.from_dict``.
    state_dict : dict of str to torch.Tensor
        Weights as float32.
    sha256 : str
        Checksum of the file, for provenance and batch resume keys.

    Raises
    ------
    ModelError
        If the file is missing or is not a geoseg model file.
    """
    path = Path(path)
    try:
        payload = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror or exc}") from exc
    try:
        data: Any = torch.load(_io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a non-model file
        raise ModelError(f"{path} is not a geoseg model file ({type(exc).__name__})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError(f"{path} is not a geoseg model file (no '{FORMAT}' marker)")
    if data.get("format_version") != FORMAT_VERSION:
        raise ModelError(
            f"{path} is model format version {data.get('format_version')}, this geoseg reads "
            f"version {FORMAT_VERSION}"
        )
    card = data.get("card")
    if not isinstance(card, dict):
        raise ModelError(f"{path} is not a geoseg model file (no card)")
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in data["state_dict"].items()}
    return card, state, hashlib.sha256(payload).hexdigest()
