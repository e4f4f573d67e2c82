"""The training loop: prepare scenes, optimise, checkpoint, validate, write a model file.

A run lives in one folder (``config.output``): ``checkpoint.pt`` (written every
``checkpoint_every`` steps, atomically), ``<model name>.pt`` (the final geoseg model file) and
``metrics.json``. Running the same config again resumes from the checkpoint, and because the
batch of step ``k`` depends only on ``(seed, k)``, an interrupted and resumed run ends with the same
weights as an uninterrupted one (on CPU; CUDA kernels are not bit-deterministic).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from geoseg.errors import ConfigError
from geoseg.inference import classify_normalized, resolve_device, tile_multiple
from geoseg.io.atomic import atomic_output
from geoseg.io.labels import IGNORE
from geoseg.io.report_files import write_json
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
from geoseg.models.loading import LoadedModel, save_model_file
from geoseg.normalization import normalize_reflectance
from geoseg.training.balance import class_distribution
from geoseg.training.config import TrainConfig
from geoseg.training.datasets import GeoPatchSampler, PatchSampler
from geoseg.training.losses import TrainingObjective, build_loss
from geoseg.training.metrics import ConfusionMatrix, SegmentationMetrics
from geoseg.training.prepare import SceneData, prepare_scene

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
#: Written beside the checkpoint: the training pixels per class (see geoseg.training.balance).
CLASS_DISTRIBUTION = "class_distribution.json"


@dataclass(frozen=True)
class Progress:
    """A progress report, passed to the ``progress`` callback of :func:`train`.

    Parameters
    ----------
    step, steps : int
        Steps done and planned.
    loss : float
        Mean loss since the previous report.
    lr : float
        Current learning rate.
    megapixels_per_second : float
        Training throughput since the previous report.
    """

    step: int
    steps: int
    loss: float
    lr: float
    megapixels_per_second: float


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train`.

    Parameters
    ----------
    model_path : Path
        The geoseg model file written.
    card : ModelCard
        Its card (held-out metrics included).
    metrics : dict
        Held-out metrics per validation scene (``{}`` if no scene has a holdout).
    steps : int
        Steps trained in total.
    megapixels_per_second : float
        Mean training throughput of this invocation.
    resumed_from : int
        Step the run resumed from (0 for a fresh run).
    """

    model_path: Path
    card: ModelCard
    metrics: dict[str, Any] = field(default_factory=dict)
    steps: int = 0
    megapixels_per_second: float = 0.0
    resumed_from: int = 0


DEFAULT_BANDS = ("blue", "green", "red", "nir", "swir16", "swir22")


def _initial_card(config: TrainConfig) -> tuple[ModelCard, nn.Module]:
    """The card and network to start from: a fresh one, or a model to fine-tune."""
    spec = config.model
    if spec.init_from:
        from geoseg.models.loading import embedded_model_paths, load_model

        # an embedded model's name, else a model file relative to the config
        source = spec.init_from
        if source not in embedded_model_paths():
            source = str(config.resolve(source))
        loaded = load_model(source)
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


def _load_init(config: TrainConfig) -> LoadedModel:
    """The model ``model.init_from`` names (embedded, else a file relative to the recipe)."""
    from geoseg.models.loading import embedded_model_paths, load_model

    assert config.model.init_from is not None
    source = config.model.init_from
    if source not in embedded_model_paths():
        source = str(config.resolve(source))
    return load_model(source)


def _load_teacher(config: TrainConfig) -> LoadedModel | None:
    """The recipe's teacher model, in eval mode, or ``None``."""
    from geoseg.models.loading import embedded_model_paths, load_model

    if config.teacher is None:
        return None
    source = config.teacher
    if source not in embedded_model_paths():
        source = str(config.resolve(source))
    teacher = load_model(source)
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


def _lr_factor(config: TrainConfig) -> Callable[[int], float]:
    optim = config.optim

    def factor(step: int) -> float:
        if step < optim.warmup_steps:
            return (step + 1) / optim.warmup_steps
        if optim.schedule == "constant":
            return 1.0
        span = max(optim.steps - optim.warmup_steps, 1)
        done = min((step - optim.warmup_steps) / span, 1.0)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * done))

    return factor


def validate(
    network: nn.Module,
    card: ModelCard,
    scenes: list[SceneData],
    device: torch.device,
    coarsen: int = 1,
) -> dict[str, Any]:
    """Metrics on every scene's held-out window in the card's default legend, plus their total.

    Each scene is classified whole (so tiles near the holdout see their real surroundings, as in
    prediction) and scored inside the holdout only.

    Parameters
    ----------
    network, card : nn.Module, ModelCard
        The model being trained.
    scenes : list of SceneData
        Prepared scenes; those without a holdout are skipped.
    device : torch.device
        Where to run the network.
    coarsen : int
        With ``coarsen > 1`` the model sees each scene as a sensor with pixels ``coarsen``
        times larger would (area-averaged, then resampled back as prediction resamples such a
        scene), while the reference stays the teacher's labels at full resolution: how the
        model holds on, for example, 30 m Landsat at a 10 m model.
    """
    legend = card.legend()
    groups = np.asarray(legend.matrix(card.classes), dtype=np.float32)
    to_group = np.append(groups.argmax(axis=1), IGNORE).astype(np.int64)
    names = [c.name for c in legend.classes]
    pooled = ConfusionMatrix(len(names))
    out: dict[str, Any] = {}
    for scene in scenes:
        if scene.holdout is None:
            continue
        reflectance = coarsened(scene.image, coarsen) if coarsen > 1 else scene.image
        image = model_input(reflectance, card)
        predicted = classify_normalized(
            network, image, card.tile_size, card.overlap, tile_multiple(card), device, groups=groups
        )
        labels = scene.labels[scene.holdout]
        reference = to_group[np.where(labels == IGNORE, len(card.classes), labels)]
        matrix = ConfusionMatrix(len(names))
        matrix.update(reference, predicted[scene.holdout])
        pooled.merge(matrix)
        out[scene.name] = SegmentationMetrics.from_confusion(matrix, names).to_dict()
        rows, cols = scene.holdout
        out[scene.name]["window"] = {
            "rows": [rows.start, rows.stop],
            "cols": [cols.start, cols.stop],
        }
    if len(out) > 1:
        out["pooled"] = SegmentationMetrics.from_confusion(pooled, names).to_dict()
    return out


def coarsened(reflectance: np.ndarray, factor: int) -> np.ndarray:
    """``(bands, H, W)`` reflectance as a sensor with ``factor`` times larger pixels sees it.

    Blocks of ``factor x factor`` valid pixels are averaged (a coarse pixel integrates its
    ground) and resampled bilinearly back to the input grid; pixels invalid in the input stay 0.
    """
    valid = np.any(reflectance != 0, axis=0)
    tensor = torch.from_numpy(np.ascontiguousarray(reflectance, dtype=np.float32))[None]
    weight = torch.from_numpy(valid.astype(np.float32))[None, None]
    height, width = valid.shape
    small = (max(1, height // factor), max(1, width // factor))
    total = nn.functional.interpolate(tensor * weight, size=small, mode="area")
    count = nn.functional.interpolate(weight, size=small, mode="area")
    seen = (count > 0).float()
    mean = total / count.clamp_min(1e-6)
    # resampled with the empty coarse pixels left out, so nodata does not darken its neighbours
    size = (height, width)
    back = nn.functional.interpolate(mean * seen, size=size, mode="bilinear", align_corners=False)
    weight_back = nn.functional.interpolate(seen, size=size, mode="bilinear", align_corners=False)
    back = back / weight_back.clamp_min(1e-6)
    out: np.ndarray = back[0].numpy()
    out[:, ~valid] = 0.0
    return out


def model_input(reflectance: np.ndarray, card: ModelCard) -> np.ndarray:
    """The card's normalization of a ``(bands, H, W)`` reflectance image, 0 where invalid."""
    valid = np.any(reflectance != 0, axis=0)
    tensor = torch.from_numpy(np.ascontiguousarray(reflectance, dtype=np.float32))[None]
    out: np.ndarray = normalize_reflectance(tensor, card.normalization)[0].numpy()
    out[:, ~valid] = 0.0
    return out


def _set_training(network: nn.Module, freeze_batch_norm: bool) -> None:
    """Training mode, with batch norm frozen (statistics and affine terms) if asked."""
    network.train()
    if freeze_batch_norm:
        for module in network.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
                for parameter in module.parameters():
                    parameter.requires_grad_(False)


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_output(path, overwrite=True) as tmp:
        torch.save(state, tmp)


def train(
    config: TrainConfig,
    progress: Callable[[Progress], None] | None = None,
    resume: bool = True,
) -> TrainResult:
    """Train a model as the recipe says and write a geoseg model file.

    Parameters
    ----------
    config : TrainConfig
        The recipe (see :func:`geoseg.training.config.load_train_config`).
    progress : callable, optional
        Called with a :class:`Progress` every ``optim.log_every`` steps (progress is also logged).
    resume : bool
        Continue from ``checkpoint.pt`` in the output folder if present.

    Returns
    -------
    TrainResult
        The model file, its card and the held-out metrics.

    Raises
    ------
    ConfigError, LabelError, BandMappingError, DeviceError
        On bad recipes or data, before any training step.
    """
    optim = config.optim
    torch.set_num_threads(max(1, optim.threads))
    torch.manual_seed(optim.seed)
    device = resolve_device(optim.device)
    out_dir = Path(config.output)
    out_dir.mkdir(parents=True, exist_ok=True)

    card, network = _initial_card(config)
    teacher = _load_teacher(config)
    scenes = [
        prepare_scene(
            spec,
            card.bands,
            card.classes,
            out_dir / "prepared",
            resolve=config.resolve,
            teacher=teacher,
            gsd=card.gsd,
            reflectance_level=card.reflectance_level,
        )
        for spec in config.scenes
    ]
    balance = class_distribution(scenes, card.classes)
    write_json(out_dir / CLASS_DISTRIBUTION, balance, overwrite=True)
    log.info(
        "training pixels: %s",
        ", ".join(f"{n} {100 * v:.1f}%" for n, v in balance["share"].items()),
    )
    for key, what in (("absent", "no training pixel"), ("scarce", "under 0.5% of the pixels")):
        if balance[key]:
            log.warning("classes with %s: %s", what, ", ".join(balance[key]))
    if config.model.init_from and teacher is not None:
        source = _load_init(config)
        regressed = refit_input_bands(
            network,
            source.network.state_dict(),
            source.card.bands,
            card.bands,
            [s.teacher_sample for s in scenes if s.teacher_sample is not None],
            teacher.card.bands,
        )
        if regressed:
            log.info(
                "%s: %s regressed on the kept bands into the input layer", card.name, regressed
            )
    names = [c.name for c in card.classes]
    unknown = [n for n in config.augment.focus_classes if n not in names]
    if unknown:
        raise ConfigError(f"augment.focus_classes {unknown} are not model classes ({names})")
    sampler: PatchSampler
    if optim.sampler == "torchgeo":
        if config.augment.focus_probability > 0:
            log.warning("optim.sampler torchgeo draws uniformly: augment.focus_* is not used")
        sampler = GeoPatchSampler(
            scenes,
            out_dir / "prepared" / "torchgeo",
            optim.patch_size,
            config.augment,
            card.normalization,
            card.bands,
            seed=optim.seed,
        )
    else:
        sampler = PatchSampler(
            scenes,
            optim.patch_size,
            config.augment,
            card.normalization,
            card.bands,
            [names.index(n) for n in config.augment.focus_classes],
            seed=optim.seed,
        )
    hard = build_loss(config.loss.name, config.loss.class_weights, config.loss.params)
    if config.loss.class_weights and len(config.loss.class_weights) != card.num_classes:
        raise ConfigError(
            f"loss.class_weights has {len(config.loss.class_weights)} values for "
            f"{card.num_classes} classes"
        )
    objective = TrainingObjective(
        hard, config.loss.weight, config.loss.distillation, config.loss.temperature
    ).to(device)
    network.to(device)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=optim.lr, weight_decay=optim.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(config))
    use_amp = optim.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    start = 0
    checkpoint = out_dir / CHECKPOINT
    if resume and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state.get("config") != dataclasses.asdict(config):
            log.warning("checkpoint %s was made with another config; resuming anyway", checkpoint)
        network.load_state_dict(state["network"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start = int(state["step"])
        log.info("resuming %s from step %d", out_dir, start)

    _set_training(network, optim.freeze_batch_norm)
    window_loss, window_steps, window_time = 0.0, 0, time.perf_counter()
    run_time, run_pixels = 0.0, 0
    for step in range(start, optim.steps):
        batch = sampler.batch(step, optim.batch_size)
        tick = time.perf_counter()
        image = batch.image.to(device, non_blocking=True)
        labels = batch.labels.to(device, non_blocking=True)
        soft = batch.soft.to(device, non_blocking=True) if batch.soft is not None else None
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            logits = network(image)
        loss = objective(logits.float(), labels, soft)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        run_time += time.perf_counter() - tick
        run_pixels += image.shape[0] * image.shape[2] * image.shape[3]
        window_loss += float(loss.detach())
        window_steps += 1
        done = step + 1
        if done % optim.log_every == 0 or done == optim.steps:
            elapsed = max(time.perf_counter() - window_time, 1e-9)
            pixels = window_steps * optim.batch_size * optim.patch_size**2
            report = Progress(
                done,
                optim.steps,
                window_loss / window_steps,
                float(scheduler.get_last_lr()[0]),
                pixels / elapsed / 1e6,
            )
            log.info(
                "step %d/%d loss %.4f lr %.2e %.3f Mpx/s",
                report.step,
                report.steps,
                report.loss,
                report.lr,
                report.megapixels_per_second,
            )
            if progress is not None:
                progress(report)
            window_loss, window_steps, window_time = 0.0, 0, time.perf_counter()
        if done % optim.checkpoint_every == 0 or done == optim.steps:
            _save_checkpoint(
                checkpoint,
                {
                    "step": done,
                    "network": network.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "config": dataclasses.asdict(config),
                },
            )
        if optim.validate_every and done % optim.validate_every == 0 and done < optim.steps:
            interim = validate(network, card, scenes, device)
            for name, values in interim.items():
                log.info("step %d validation %s: mIoU %s", done, name, values["miou"])
            _set_training(network, optim.freeze_batch_norm)

    network.eval()
    metrics = validate(network, card, scenes, device)
    for name, values in metrics.items():
        log.info("held-out %s: mIoU %s", name, values["miou"])
    if optim.validate_coarsen > 1:
        coarse = validate(network, card, scenes, device, coarsen=optim.validate_coarsen)
        for name, values in coarse.items():
            log.info(
                "held-out %s, pixels x%d: mIoU %s", name, optim.validate_coarsen, values["miou"]
            )
        metrics[f"coarsened_x{optim.validate_coarsen}"] = coarse
    throughput = run_pixels / run_time / 1e6 if run_time > 0 else 0.0
    card = card.with_updates(
        training=_training_record(config, card, scenes, throughput, device),
        metrics=_metrics_record(config, metrics),
    )
    model_path = out_dir / f"{card.name}.pt"
    network.to("cpu")
    save_model_file(model_path, card, network.state_dict())
    write_json(out_dir / "metrics.json", metrics, overwrite=True)
    log.info("wrote %s", model_path)
    return TrainResult(model_path, card, metrics, optim.steps, throughput, start)


def _training_record(
    config: TrainConfig,
    card: ModelCard,
    scenes: list[SceneData],
    throughput: float,
    device: torch.device,
) -> dict[str, Any]:
    record: dict[str, Any] = dict(config.model.provenance)
    recipe = _json_safe(dataclasses.asdict(config))
    recipe.pop("base_dir", None)
    record["recipe"] = recipe
    record["scenes"] = {
        s.name: {
            "shape": list(s.shape),
            "trained": s.train,
            "held_out": (
                {
                    "rows": [s.holdout[0].start, s.holdout[0].stop],
                    "cols": [s.holdout[1].start, s.holdout[1].stop],
                }
                if s.holdout is not None
                else None
            ),
        }
        for s in scenes
    }
    record["throughput_megapixels_per_second"] = round(throughput, 4)
    record["device"] = device.type
    record["torch"] = str(torch.__version__)
    if config.model.init_from:
        record["fine_tuned_from"] = config.model.init_from
    return record


def _metrics_record(config: TrainConfig, metrics: dict[str, Any]) -> dict[str, Any]:
    if not metrics:
        return {}
    reference = config.model.provenance.get("metrics_reference", "the scenes' labels")
    record: dict[str, Any] = {"reference": reference, "held_out": {}}
    for name, values in metrics.items():
        if name.startswith("coarsened_x"):
            record[f"held_out_{name}"] = {n: _compact(v) for n, v in values.items()}
        else:
            record["held_out"][name] = _compact(values)
    return record


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "miou": _round(values["miou"]),
        "pixel_accuracy": _round(values["pixel_accuracy"]),
        "mean_accuracy": _round(values["mean_accuracy"]),
        "iou": {c: _round(v["iou"]) for c, v in values["per_class"].items()},
        "f1": {c: _round(v["f1"]) for c, v in values["per_class"].items()},
        "support": {c: v["support"] for c, v in values["per_class"].items()},
        **({"window": values["window"]} if "window" in values else {}),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
