"""The training loop: prepare scenes, optimise, checkpoint, validate, write a model file.

A run lives in one folder (``config.output``): ``checkpoint.pt`` (written every
``checkpoint_every`` steps, atomically), ``<model name>.pt`` (the final geoseg model file) and
``metrics.json``. Running the same config again resumes from the checkpoint, and because the
batch of step ``k`` depends only on ``(seed, k)``, an interrupted and resumed run ends with the same
weights as an uninterrupted one (on CPU; CUDA kernels are not bit-deterministic).

:func:`train` runs its steps in order: the starting network
(:mod:`geoseg.training.initialization`), the prepared scenes and their class balance, the patch
sampler, the optimisation state (resumed from the checkpoint), the step loop, and the finish
(held-out validation from :mod:`geoseg.training.validation`, the card, the model file and
``metrics.json``). Their order is also the order of the random draws, so it is part of what makes
a run reproducible.
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

import torch
from torch import nn

from geoseg.errors import ConfigError
from geoseg.inference import resolve_device
from geoseg.io.atomic import atomic_output
from geoseg.io.report_files import write_json
from geoseg.models.architectures import get_architecture
from geoseg.models.card import FULL_LEGEND, ModelCard
from geoseg.models.loading import save_model_file
from geoseg.training.balance import class_distribution
from geoseg.training.config import TrainConfig
from geoseg.training.datasets import Batch, GeoPatchSampler, PatchSampler
from geoseg.training.initialization import (
    DEFAULT_BANDS,
    adapt_input_bands,
    initial_card,
    load_teacher,
    refit_from_init,
    refit_input_bands,
    transplant_weights,
)
from geoseg.training.losses import TrainingObjective, ViewLoss, build_loss
from geoseg.training.prepare import SceneData, prepare_scene
from geoseg.training.validation import (
    card_metrics,
    coarsened,
    held_out_metrics,
    model_input,
    validate,
)

# the starting network and validation lived here before; their names stay importable from here
__all__ = [
    "CHECKPOINT",
    "CLASS_DISTRIBUTION",
    "DEFAULT_BANDS",
    "Progress",
    "TrainResult",
    "adapt_input_bands",
    "coarsened",
    "model_input",
    "refit_input_bands",
    "train",
    "transplant_weights",
    "validate",
]

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
    # seeded before the network is built: a fresh network's weights are the first draws
    torch.manual_seed(optim.seed)
    device = resolve_device(optim.device)
    out_dir = Path(config.output)
    out_dir.mkdir(parents=True, exist_ok=True)

    card, network = initial_card(config)
    scenes = _prepare_scenes(config, card, network, out_dir)
    sampler = _build_sampler(config, card, scenes, out_dir)
    state = _Optimisation.build(config, card, network, device)
    start = state.resume(out_dir / CHECKPOINT, config) if resume else 0
    throughput = _run_steps(config, state, sampler, card, scenes, start, progress)
    return _finish(config, card, state, scenes, throughput, start)


def _prepare_scenes(
    config: TrainConfig, card: ModelCard, network: nn.Module, out_dir: Path
) -> list[SceneData]:
    """The recipe's scenes, prepared for the model, with their class balance written and logged.

    The teacher (if any) gives the scenes their soft targets and is let go afterwards; when
    fine-tuning drops bands, its samples also refit the network's input layer
    (:func:`~geoseg.training.initialization.refit_from_init`).
    """
    teacher = load_teacher(config)
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
        samples = [s.teacher_sample for s in scenes if s.teacher_sample is not None]
        refit_from_init(config, network, card, teacher.card.bands, samples)
    return scenes


def _build_sampler(
    config: TrainConfig, card: ModelCard, scenes: list[SceneData], out_dir: Path
) -> PatchSampler:
    """The sampler the recipe's ``optim.sampler`` names, drawing patches of ``scenes``.

    Raises
    ------
    ConfigError
        If ``augment.focus_classes`` names a class the model does not have.
    """
    optim = config.optim
    names = [c.name for c in card.classes]
    unknown = [n for n in config.augment.focus_classes if n not in names]
    if unknown:
        raise ConfigError(f"augment.focus_classes {unknown} are not model classes ({names})")
    if optim.sampler == "torchgeo":
        if config.augment.focus_probability > 0:
            log.warning("optim.sampler torchgeo draws uniformly: augment.focus_* is not used")
        return GeoPatchSampler(
            scenes,
            out_dir / "prepared" / "torchgeo",
            optim.patch_size,
            config.augment,
            card.normalization,
            card.bands,
            seed=optim.seed,
        )
    return PatchSampler(
        scenes,
        optim.patch_size,
        config.augment,
        card.normalization,
        card.bands,
        [names.index(n) for n in config.augment.focus_classes],
        seed=optim.seed,
    )


@dataclass(frozen=True)
class _Optimisation:
    """The network and what updates it: what a checkpoint holds, and one optimisation step."""

    network: nn.Module
    objective: TrainingObjective
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    device: torch.device
    use_amp: bool
    amp_dtype: torch.dtype
    channels_last: bool

    @classmethod
    def build(
        cls, config: TrainConfig, card: ModelCard, network: nn.Module, device: torch.device
    ) -> _Optimisation:
        """The recipe's loss, optimizer, schedule and precision, with ``network`` on ``device``.

        Raises
        ------
        ConfigError
            If ``loss.class_weights`` has not one value per class.
        """
        optim, loss = config.optim, config.loss
        hard = build_loss(loss.name, loss.class_weights, loss.params)
        if loss.class_weights and len(loss.class_weights) != card.num_classes:
            raise ConfigError(
                f"loss.class_weights has {len(loss.class_weights)} values for "
                f"{card.num_classes} classes"
            )
        view = None
        if loss.view > 0:
            if card.default_legend == FULL_LEGEND:
                raise ConfigError(
                    f"loss.view needs a model that delivers a view of its classes; "
                    f"{card.name} delivers them all (set model.default_legend)"
                )
            view = ViewLoss(card.legend(card.default_legend).matrix(card.classes))
        objective = TrainingObjective(
            hard, loss.weight, loss.distillation, loss.temperature, view, loss.view, loss.margin
        ).to(device)
        network.to(device)
        # as at inference: a training step of the Dynamic World network measured 1.41x faster
        # channels-last on a 2-core CPU in float32, of a U-Net-ResNet18 1.29x
        channels_last = get_architecture(card.architecture).channels_last
        if channels_last:
            network.to(memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(
            network.parameters(), lr=optim.lr, weight_decay=optim.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(config))
        use_amp = optim.amp and device.type == "cuda"
        amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
        return cls(
            network,
            objective,
            optimizer,
            scheduler,
            scaler,
            device,
            use_amp,
            amp_dtype,
            channels_last,
        )

    def resume(self, checkpoint: Path, config: TrainConfig) -> int:
        """Load ``checkpoint`` if there is one: the step it was written at, else 0."""
        if not checkpoint.exists():
            return 0
        state = torch.load(checkpoint, map_location=self.device, weights_only=False)
        if state.get("config") != dataclasses.asdict(config):
            log.warning("checkpoint %s was made with another config; resuming anyway", checkpoint)
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        start = int(state["step"])
        log.info("resuming %s from step %d", checkpoint.parent, start)
        return start

    def save(self, checkpoint: Path, step: int, config: TrainConfig) -> None:
        """Write the state after ``step`` steps to ``checkpoint``, atomically."""
        state = {
            "step": step,
            "network": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "config": dataclasses.asdict(config),
        }
        with atomic_output(checkpoint, overwrite=True) as tmp:
            torch.save(state, tmp)

    def step(self, batch: Batch) -> torch.Tensor:
        """One optimisation step on ``batch``; its loss, on the device."""
        image = batch.image.to(self.device, non_blocking=True)
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        labels = batch.labels.to(self.device, non_blocking=True)
        soft = batch.soft.to(self.device, non_blocking=True) if batch.soft is not None else None
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            logits = self.network(image)
        loss = self.objective(logits.float(), labels, soft)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        value: torch.Tensor = loss
        return value

    def lr(self) -> float:
        """The current learning rate."""
        return float(self.scheduler.get_last_lr()[0])


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


def _set_training(network: nn.Module, freeze_batch_norm: bool) -> None:
    """Training mode, with batch norm frozen (statistics and affine terms) if asked."""
    network.train()
    if freeze_batch_norm:
        for module in network.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
                for parameter in module.parameters():
                    parameter.requires_grad_(False)


class _Window:
    """Loss and throughput since the previous progress report."""

    def __init__(self, steps: int, pixels_per_step: int) -> None:
        self.steps = steps
        self.pixels_per_step = pixels_per_step
        self.loss, self.count, self.since = 0.0, 0, time.perf_counter()

    def add(self, loss: float) -> None:
        """Count one step's loss."""
        self.loss += loss
        self.count += 1

    def report(self, done: int, lr: float, progress: Callable[[Progress], None] | None) -> None:
        """Log the window as the report after ``done`` steps, pass it on, and start a new one."""
        elapsed = max(time.perf_counter() - self.since, 1e-9)
        pixels = self.count * self.pixels_per_step
        report = Progress(done, self.steps, self.loss / self.count, lr, pixels / elapsed / 1e6)
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
        self.loss, self.count, self.since = 0.0, 0, time.perf_counter()


def _run_steps(
    config: TrainConfig,
    state: _Optimisation,
    sampler: PatchSampler,
    card: ModelCard,
    scenes: list[SceneData],
    start: int,
    progress: Callable[[Progress], None] | None,
) -> float:
    """Steps ``start`` to ``optim.steps``, reported, checkpointed and validated as the recipe says.

    Returns
    -------
    float
        Training throughput of these steps in megapixels per second (0 when none ran).
    """
    optim = config.optim
    checkpoint = Path(config.output) / CHECKPOINT
    _set_training(state.network, optim.freeze_batch_norm)
    window = _Window(optim.steps, optim.batch_size * optim.patch_size**2)
    run_time, run_pixels = 0.0, 0
    for step in range(start, optim.steps):
        batch = sampler.batch(step, optim.batch_size)
        tick = time.perf_counter()
        loss = state.step(batch)
        run_time += time.perf_counter() - tick
        run_pixels += batch.image.shape[0] * batch.image.shape[2] * batch.image.shape[3]
        window.add(float(loss.detach()))
        done = step + 1
        if done % optim.log_every == 0 or done == optim.steps:
            window.report(done, state.lr(), progress)
        if done % optim.checkpoint_every == 0 or done == optim.steps:
            state.save(checkpoint, done, config)
        if optim.validate_every and done % optim.validate_every == 0 and done < optim.steps:
            interim = validate(state.network, card, scenes, state.device)
            for name, values in interim.items():
                log.info("step %d validation %s: mIoU %s", done, name, values["miou"])
            _set_training(state.network, optim.freeze_batch_norm)
    return run_pixels / run_time / 1e6 if run_time > 0 else 0.0


def _finish(
    config: TrainConfig,
    card: ModelCard,
    state: _Optimisation,
    scenes: list[SceneData],
    throughput: float,
    start: int,
) -> TrainResult:
    """Validate the trained network, complete its card and write the model file and metrics."""
    out_dir = Path(config.output)
    network = state.network
    network.eval()
    metrics = held_out_metrics(network, card, scenes, state.device, config.optim.validate_coarsen)
    reference = config.model.provenance.get("metrics_reference", "the scenes' labels")
    card = card.with_updates(
        training=_training_record(config, card, scenes, throughput, state.device),
        metrics=card_metrics(metrics, reference),
    )
    model_path = out_dir / f"{card.name}.pt"
    network.to("cpu")
    save_model_file(model_path, card, network.state_dict())
    write_json(out_dir / "metrics.json", metrics, overwrite=True)
    log.info("wrote %s", model_path)
    return TrainResult(model_path, card, metrics, config.optim.steps, throughput, start)


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


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
