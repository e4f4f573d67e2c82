"""Model files as cards and networks; resolve a model name or path; choose an embedded model.

:mod:`geoseg.io.model_file` reads and writes the file with the card as plain data; the card is
built (and checked) here, so the I/O layer never imports the models package.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from geoseg.bands import scene_band_names, which_landsat_hint
from geoseg.core import first_line
from geoseg.errors import ModelError
from geoseg.io.model_file import read_model_file, write_model_file
from geoseg.models.architectures import build_network
from geoseg.models.card import ModelCard

WEIGHTS_DIR = Path(__file__).parent / "weights"
MODEL_SUFFIX = ".pt"
# Preference order when no --model is given: the first whose bands the scene has wins, so a
# Sentinel-2 scene with its red-edge bands gets Dynamic World itself.
DEFAULT_MODELS: tuple[str, ...] = (
    "landcover-s2-dw",
    "landcover-s2-dw6",
    "landcover-rgbn-dw",
    "landcover-rgb-dw",
)


def save_model_file(
    path: str | Path, card: ModelCard, state_dict: Mapping[str, torch.Tensor]
) -> str:
    """Write a model file (card and weights) atomically and return its SHA-256."""
    return write_model_file(path, card.to_dict(), state_dict)


def load_model_file(path: str | Path) -> tuple[ModelCard, dict[str, torch.Tensor], str]:
    """Read a model file: its card, its weights as float32 and the file's SHA-256.

    Raises
    ------
    ModelError
        If the file is missing, is not a geoseg model file or its card is invalid.
    """
    card, state, sha256 = read_model_file(path)
    return ModelCard.from_dict(card), state, sha256


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference.

    Parameters
    ----------
    card : ModelCard
        What the model expects and produces.
    network : torch.nn.Module
        The network in eval mode, on the CPU.
    sha256 : str
        Checksum of the model file.
    source : str
        Where it came from: an embedded model's name or a file path.
    chosen_because : str
        Why a run uses it, for the run report: the reason the default was picked for a scene
        (see `choose_default_model`), or "given by the caller" when a model was named.
    """

    card: ModelCard
    network: nn.Module
    sha256: str
    source: str
    chosen_because: str = "given by the caller"


def embedded_model_paths() -> dict[str, Path]:
    """Map each embedded model's name to its file."""
    return {p.stem: p for p in sorted(WEIGHTS_DIR.glob(f"*{MODEL_SUFFIX}"))}


def resolve_model_path(name_or_path: str | Path) -> Path:
    """Turn an embedded model name or a file path into a path.

    Raises
    ------
    ModelError
        If it is neither an embedded name nor an existing file.
    """
    embedded = embedded_model_paths()
    if str(name_or_path) in embedded:
        return embedded[str(name_or_path)]
    path = Path(name_or_path)
    if path.is_file():
        return path
    names = ", ".join(embedded) or "none"
    raise ModelError(
        f"unknown model {str(name_or_path)!r}: not an embedded model ({names}) nor a model file"
    )


def load_model(name_or_path: str | Path) -> LoadedModel:
    """Load an embedded model by name, or a model file by path.

    Raises
    ------
    ModelError
        If the name is unknown, the file is not a geoseg model or its weights do not fit the card.
    """
    path = resolve_model_path(name_or_path)
    card, state, sha256 = load_model_file(path)
    if card.normalization.legacy:
        raise ModelError(
            f"model {card.name!r} ({path.name}) normalizes each scene by its own statistics, "
            "so a pixel's class depends on the rest of the file: retrain it with this geoseg"
        )
    network = build_network(card.architecture, len(card.bands), card.num_classes, card.arch_params)
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"weights in {path} do not fit its card ({first_line(exc)})") from exc
    network.eval()
    source = path.stem if path.parent == WEIGHTS_DIR else str(path)
    return LoadedModel(card=card, network=network, sha256=sha256, source=source)


def read_embedded_cards() -> list[tuple[ModelCard, str]]:
    """Cards and checksums of every embedded model, in name order."""
    cards = []
    for path in embedded_model_paths().values():
        card, _, sha256 = load_model_file(path)
        cards.append((card, sha256))
    return cards


@dataclass(frozen=True)
class ModelChoice:
    """The embedded model picked for a scene given no ``--model``, and why.

    ``why`` is one line for the log and the run report.
    """

    name: str
    why: str


def choose_default_model(
    band_descriptions: tuple[str | None, ...],
    colors: tuple[str, ...] = (),
    sensor: str | None = None,
    requested_bands: int | None = None,
    pixel_size_m: float | None = None,
) -> ModelChoice:
    """Pick the embedded model to use for a scene when none is named, and say why.

    The models whose bands the scene's band names (descriptions, else color interpretation) all
    include are candidates (with ``--bands``, ``requested_bands`` of them: those with that many
    bands). Of these, the first of :data:`DEFAULT_MODELS` trained for the scene's pixel size
    wins (:meth:`ModelCard.holds_at`), else the one trained for the coarsest pixels: Dynamic
    World, trained at 10 m, agrees with its own 10 m labels far less on 20 or 30 m pixels than
    the six-band student trained for 10-30 m.

    Raises
    ------
    ModelError
        If no embedded model fits, naming each model's bands.
    """
    embedded = embedded_model_paths()
    candidates = [n for n in DEFAULT_MODELS if n in embedded]
    cards = {n: load_model_file(embedded[n])[0] for n in candidates}
    in_order = [n for n in scene_band_names(band_descriptions, colors, sensor)[0] if n]
    names = set(in_order)
    fitting = [
        name
        for name, card in cards.items()
        if (requested_bands is None and set(card.bands) <= names)
        or (requested_bands is not None and len(card.bands) == requested_bands)
    ]
    if fitting:
        return _for_pixel_size(fitting, cards, pixel_size_m, requested_bands)
    wanted = "; ".join(f"{n}: {', '.join(c.bands)}" for n, c in cards.items()) or "none embedded"
    if requested_bands is not None:
        raise ModelError(
            f"--bands gives {requested_bands} bands and no embedded model takes "
            f"{requested_bands} ({wanted}): give one scene band per model band, or --model"
        )
    repeated = sorted({n for n in in_order if in_order.count(n) > 1})
    what = (
        f"bands named {', '.join(in_order)}"
        + (f" ({', '.join(repeated)} more than once)" if repeated else "")
        if names
        else "unnamed bands"
    )
    if which_landsat_hint(sensor):
        raise ModelError(f"no embedded model fits a scene of {what}{which_landsat_hint(sensor)}")
    raise ModelError(
        f"no embedded model fits a scene of {len(band_descriptions)} {what} ({wanted}); "
        "pass --model and --bands"
    )


def _for_pixel_size(
    fitting: list[str],
    cards: Mapping[str, ModelCard],
    pixel_size_m: float | None,
    requested_bands: int | None,
) -> ModelChoice:
    """The first of ``fitting`` trained for ``pixel_size_m``, else the one trained coarsest."""
    fits = (
        f"the first embedded model with {requested_bands} bands (--bands)"
        if requested_bands is not None
        else "the first embedded model whose bands the scene names"
    )
    first = cards[fitting[0]]
    if pixel_size_m is None or first.holds_at(pixel_size_m):
        return ModelChoice(first.name, f"no --model: {fits}")
    holding = [name for name in fitting if cards[name].holds_at(pixel_size_m)]
    chosen = (
        holding[0]
        if holding
        else max(fitting, key=lambda name: cards[name].coarsest_gsd or math.inf)
    )
    if chosen == first.name:
        return ModelChoice(
            chosen,
            f"no --model: {fits}; none was trained for pixels as coarse as the scene's "
            f"{pixel_size_m:.1f} m (this one: up to {first.coarsest_gsd:g} m)",
        )
    return ModelChoice(
        chosen,
        f"no --model: {fits} is {first.name}, trained for pixels of {first.coarsest_gsd:g} m "
        f"at most, and the scene's are "
        f"{pixel_size_m:.1f} m: {chosen} was trained for up to {cards[chosen].coarsest_gsd:g} m",
    )
