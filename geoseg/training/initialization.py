"""Where a run's network starts: a fresh network, or a model to fine-tune on the recipe's bands.

Fine-tuning keeps what the source model learned wherever its layers fit the new network: the
input convolution is re-plumbed to the recipe's bands (:func:`adapt_input_bands`, refined by
:func:`refit_input_bands` where a teacher shows how the dropped bands relate to the kept ones),
and a new architecture receives every tensor it shares with the old one
(:func:`transplant_weights`).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from geoseg.errors import ConfigError
from geoseg.models.architectures import build_network
from geoseg.models.card import LANDCOVER_CLASSES, ModelCard
from geoseg.models.catalogue import (
    DYNAMIC_WORLD_BANDS as _DW_BANDS,
)
from geoseg.models.catalogue import (
    DYNAMIC_WORLD_CLASSES,
    LANDCOVER_VIEW,
    dynamic_world_normalization,
)
from geoseg.models.loading import LoadedModel, embedded_model_paths, load_model
from geoseg.training.config import TrainConfig

log = logging.getLogger(__name__)

DEFAULT_BANDS = ("blue", "green", "red", "nir", "swir16", "swir22")


def initial_card(config: TrainConfig) -> tuple[ModelCard, nn.Module]:
    """The card and network to start from: a fresh one, or a model to fine-tune.

    A fresh network draws its initial weights from torch's global generator, so the caller seeds
    it first.
    """
    if config.model.init_from:
        return _fine_tuned(config)
    spec = config.model
    bands = spec.bands or DEFAULT_BANDS
    nine = spec.classes == "dynamic_world"
    card = ModelCard(
        name=spec.name,
        architecture=spec.architecture or "unet",
        arch_params=dict(spec.arch_params),
        bands=bands,
        gsd=spec.gsd,
        normalization=dynamic_world_normalization(bands),
        classes=DYNAMIC_WORLD_CLASSES if nine else LANDCOVER_CLASSES,
        legends=(LANDCOVER_VIEW,) if nine else (),
        default_legend="landcover" if nine else "full",
        tile_size=spec.tile_size,
        overlap=spec.overlap,
        description=spec.description,
    )
    network = build_network(card.architecture, len(card.bands), card.num_classes, card.arch_params)
    return card, network


def _fine_tuned(config: TrainConfig) -> tuple[ModelCard, nn.Module]:
    """The card and network of ``model.init_from``, carried over to the recipe's model."""
    spec = config.model
    loaded = load_init(config)
    bands = spec.bands or loaded.card.bands
    architecture = spec.architecture or loaded.card.architecture
    arch_params = dict(spec.arch_params) if spec.arch_params else loaded.card.arch_params
    same_network = (architecture, dict(arch_params)) == (
        loaded.card.architecture,
        dict(loaded.card.arch_params),
    )
    card = loaded.card.with_updates(
        name=spec.name,
        bands=bands,
        normalization=_normalization_for(loaded.card, bands),
        gsd=spec.gsd if spec.gsd is not None else loaded.card.gsd,
        description=spec.description or loaded.card.description,
        training={},
        metrics={},
        **(
            {}
            if same_network
            else {
                "architecture": architecture,
                "arch_params": dict(arch_params),
                "tile_size": spec.tile_size,
                "overlap": spec.overlap,
            }
        ),
    )
    state = loaded.network.state_dict()
    if bands != loaded.card.bands:
        state = adapt_input_bands(state, loaded.card.bands, bands)
    network = build_network(card.architecture, len(bands), card.num_classes, card.arch_params)
    if same_network:
        network.load_state_dict(state)
    else:
        copied = transplant_weights(network, state)
        log.info(
            "%s: copied %d of %d tensors from %s (%s) into the new %s",
            spec.name,
            copied,
            len(network.state_dict()),
            spec.init_from,
            loaded.card.architecture,
            architecture,
        )
    network.train()
    return card, network


def _model_source(config: TrainConfig, name: str) -> str:
    """An embedded model's name as it is, else a model file relative to the recipe."""
    return name if name in embedded_model_paths() else str(config.resolve(name))


def load_init(config: TrainConfig) -> LoadedModel:
    """The model ``model.init_from`` names (embedded, else a file relative to the recipe)."""
    assert config.model.init_from is not None
    return load_model(_model_source(config, config.model.init_from))


def load_teacher(config: TrainConfig) -> LoadedModel | None:
    """The recipe's teacher model, in eval mode, or ``None``."""
    if config.teacher is None:
        return None
    teacher = load_model(_model_source(config, config.teacher))
    teacher.network.eval()
    return teacher


def _normalization_for(card: ModelCard, bands: tuple[str, ...]) -> dict[str, Any]:
    """The card's normalization for another set of bands, as a card dict entry.

    A kept band keeps its constants; a new band takes Dynamic World's for that band.

    Raises
    ------
    ConfigError
        If a new band has no known constants.
    """
    norm = card.normalization
    data = dataclasses.asdict(norm)
    if not norm.mean or bands == card.bands:
        return data
    means, stds = [], []
    for band in bands:
        if band in card.bands:
            means.append(norm.mean[card.bands.index(band)])
            stds.append(norm.std[card.bands.index(band)])
        elif band in _DW_BANDS:
            reference = dynamic_world_normalization((band,))
            means.append(reference.mean[0])
            stds.append(reference.std[0])
        else:
            raise ConfigError(f"model.bands: no normalization constants known for band {band!r}")
    data["mean"], data["std"] = means, stds
    return data


def transplant_weights(network: nn.Module, state: dict[str, torch.Tensor]) -> int:
    """Copy into ``network`` every tensor of ``state`` whose name and shape it shares.

    This is how a PSPNet starts from a trained U-Net: both wrap the same encoder, so its
    weights carry over and only the decoder starts from scratch.

    Returns
    -------
    int
        Number of tensors copied.

    Raises
    ------
    ConfigError
        If nothing matches (the two networks share no layer).
    """
    target = network.state_dict()
    shared = {k: v for k, v in state.items() if k in target and target[k].shape == v.shape}
    if not shared:
        raise ConfigError("model.init_from shares no layer with the new architecture")
    network.load_state_dict(shared, strict=False)
    return len(shared)


def adapt_input_bands(
    state: dict[str, torch.Tensor], old: tuple[str, ...], new: tuple[str, ...]
) -> dict[str, torch.Tensor]:
    """Re-plumb the first convolution of a state dict from bands ``old`` to bands ``new``.

    The first 4-D weight with ``len(old)`` input channels is the input convolution: a band in
    both keeps its filter slice; a new band gets the mean slice, scaled so the layer's response
    to a uniform input keeps its size.

    Raises
    ------
    ConfigError
        If no input convolution is found.
    """
    for key, weight in state.items():
        if weight.ndim == 4 and weight.shape[1] == len(old):
            mean = weight.mean(dim=1)
            slices = [weight[:, old.index(b)] if b in old else mean for b in new]
            adapted = torch.stack(slices, dim=1) * (len(old) / len(new))
            return {**state, key: adapted.contiguous()}
    raise ConfigError(f"cannot find the input convolution to adapt bands {old} to {new}")


def refit_from_init(
    config: TrainConfig,
    network: nn.Module,
    card: ModelCard,
    teacher_bands: tuple[str, ...],
    samples: list[np.ndarray],
) -> None:
    """:func:`refit_input_bands` of ``network`` from the model ``model.init_from`` names.

    Parameters
    ----------
    config : TrainConfig
        The recipe; ``model.init_from`` is set.
    network, card : nn.Module, ModelCard
        The student, as :func:`initial_card` made it.
    teacher_bands : tuple of str
        The teacher's input bands, which ``samples`` hold.
    samples : list of np.ndarray
        ``(teacher bands, N)`` samples of the teacher's model input, one per scene that has one.
    """
    source = load_init(config)
    regressed = refit_input_bands(
        network,
        source.network.state_dict(),
        source.card.bands,
        card.bands,
        samples,
        teacher_bands,
    )
    if regressed:
        log.info("%s: %s regressed on the kept bands into the input layer", card.name, regressed)


def refit_input_bands(
    network: nn.Module,
    source: dict[str, torch.Tensor],
    old: tuple[str, ...],
    new: tuple[str, ...],
    samples: list[np.ndarray],
    teacher_bands: tuple[str, ...],
) -> list[str]:
    """Start a student that drops some of its source model's bands where the source left off.

    Each dropped band's input is regressed (least squares, with an intercept) on the kept bands'
    inputs over ``samples`` of the teacher's model input, and the dropped band's slice of the
    source's input convolution is folded into the kept bands' slices and the bias. The student
    then starts as the source model fed with its dropped bands' best linear estimate, instead of
    their mean.

    Returns
    -------
    list of str
        The bands that were regressed (empty when nothing could be done).
    """
    dropped = [b for b in old if b not in new]
    if not dropped or not samples or not all(b in teacher_bands for b in (*old, *new)):
        return []
    data = np.concatenate(samples, axis=1).astype(np.float64)  # (teacher bands, N)
    kept = np.stack([data[teacher_bands.index(b)] for b in new])
    design = np.vstack([kept, np.ones(kept.shape[1])]).T
    targets = np.stack([data[teacher_bands.index(b)] for b in dropped]).T
    coef, *_ = np.linalg.lstsq(design, targets, rcond=None)  # (kept + 1, dropped)
    for key, weight in source.items():
        if weight.ndim == 4 and weight.shape[1] == len(old):
            bias_key = key[: -len("weight")] + "bias"
            adapted = torch.stack([weight[:, old.index(b)] for b in new], dim=1).double()
            bias = source[bias_key].double().clone() if bias_key in source else None
            for j, band in enumerate(dropped):
                slice_ = weight[:, old.index(band)].double()  # (out, kh, kw)
                for i in range(len(new)):
                    adapted[:, i] += slice_ * float(coef[i, j])
                if bias is not None:
                    # exact away from the image edge, where the padding's zeros are not inputs
                    bias += slice_.sum(dim=(1, 2)) * float(coef[len(new), j])
            state = network.state_dict()
            state[key] = adapted.float()
            if bias is not None:
                state[bias_key] = bias.float()
            network.load_state_dict(state)
            return dropped
    return []
