"""Running a model on chips: normalize, pad, batch, forward on the device, argmax.

Raw integer chips go to the device as they are and are normalized there (half the bytes of float32
for uint16 input); only the uint8 class map comes back. Invalid pixels (nodata, padding) are set to
0 after normalization, the same value convolutions pad with at the scene edge, and come back as
:data:`NODATA_CLASS`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from geoseg.config import PRECISIONS, TTA_MODES
from geoseg.core import NODATA as NODATA_CLASS
from geoseg.errors import ConfigError, DeviceError
from geoseg.memory import network_allocations
from geoseg.models.architectures import for_inference, get_architecture
from geoseg.models.card import Legend, ModelCard
from geoseg.models.loading import LoadedModel
from geoseg.normalization import InputTransform
from geoseg.snow_check import SnowCheck
from geoseg.stitching import assemble
from geoseg.tiling import plan_tiles

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """Turn ``auto``, ``cpu`` or ``cuda[:N]`` into a usable device.

    Raises
    ------
    DeviceError
        If CUDA is asked for and not available, or the name is unknown.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} was asked for but CUDA is not available here")
        return torch.device(name)
    raise DeviceError(f"unknown device {name!r}: use auto, cpu or cuda")


def tile_multiple(card: ModelCard) -> int:
    """The multiple tile sides must be for the card's architecture."""
    return get_architecture(card.architecture).size_multiple(card.arch_params)


@dataclass(frozen=True)
class Chips:
    """A batch of equally sized chips.

    Parameters
    ----------
    data : np.ndarray
        ``(N, bands, H, W)`` raw values.
    valid : np.ndarray
        ``(N, H, W)`` boolean validity (padding is invalid).
    """

    data: np.ndarray
    valid: np.ndarray


def uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether a run at ``precision`` (``auto``, ``fp32``, ``bf16``) computes in bfloat16."""
    return precision == "bf16" or (precision == "auto" and native_bf16(device))


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively (rather than emulating it slowly)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    # private helpers of torch.cpu: absent in some builds, where float32 is the safe answer
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


class Predictor:
    """Apply one model with one scene's normalization to batches of chips.

    Parameters
    ----------
    model : LoadedModel
        The model (moved to ``device`` here).
    transform : InputTransform
        The scene's raw values -> model input.
    device : torch.device
        Where to run. On CUDA the network runs with channels_last.
    compile : bool
        ``torch.compile`` the network (:func:`should_compile` checks a request). Where
        compiling fails, the network runs as it is, with a one-line warning.
    precision : {"auto", "fp32", "bf16"}
        Arithmetic of the forward pass: ``auto`` is bfloat16 autocast where the hardware has
        native bfloat16 (CUDA; CPUs with AVX512-BF16 or AMX, where it measured 1.8x faster than
        float32 and agreed on 99.97% of the s2-virginia scene's pixels), else float32; ``bf16``
        and ``fp32`` force one.
    legend : Legend, optional
        The classes to deliver (default: the card's default legend).
    tta : {"none", "flips", "scales", "flips,scales"}
        Test-time augmentation: ``flips`` averages the logits of the chip as it is, mirrored
        left-right, upside down and both (4x the model's time). Flipping a chip whose sides are
        multiples of the network's downsampling keeps its grid, so tiles still agree with the
        whole scene. ``scales`` adds the chip area-averaged to half its size and resampled
        bilinearly to 1.5 times it (the logits resampled back); chips then lie on a grid of
        twice the network's multiple (:attr:`size_multiple`), so that every scale puts the same
        ground on the same grid in every tile.
    own_network : bool
        Ready ``model``'s network for inference in place instead of beside a copy (its weights
        in memory once): for a model loaded for this predictor alone.
    """

    def __init__(
        self,
        model: LoadedModel,
        transform: InputTransform,
        device: torch.device,
        compile: bool = False,
        precision: str = "auto",
        legend: Legend | None = None,
        tta: str = "none",
        own_network: bool = False,
    ) -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        if tta not in TTA_MODES:
            raise ConfigError(f"--tta {tta!r} is not one of {', '.join(TTA_MODES)}")
        self.tta = TTA_MODES[tta]
        self.model = model
        self.transform = transform
        self.device = device
        self.cuda = device.type == "cuda"
        self.bf16 = uses_bf16(precision, device)
        self.network: torch.nn.Module = for_inference(model.network, own_network).to(device)
        architecture = get_architecture(model.card.architecture)
        self.channels_last = self.cuda or architecture.channels_last
        if self.channels_last:
            self.network = self.network.to(memory_format=torch.channels_last)
        self.network.eval()
        self.size_multiple = tile_multiple(model.card) * self.tta.grid_multiple
        # the network as it is stays at hand: compiling happens at the first call, and can fail
        self.compiled: Callable[[torch.Tensor], torch.Tensor] | None = None
        if compile:
            # torch's note that CUDA is absent (on every CPU compile) is noise to a user
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
            self.compiled = torch.compile(self.network, dynamic=False)
        legend = legend or model.card.legend()
        self.legend = legend
        self.lookup = torch.tensor([c.id for c in legend.classes], dtype=torch.uint8, device=device)
        self.lookup_is_identity = [c.id for c in legend.classes] == list(range(len(legend.classes)))
        # None when the legend is the model's own classes: argmax of the logits, no softmax
        self.groups: torch.Tensor | None = None
        self.snow_check = SnowCheck.for_card(model.card)
        if [g for g in legend.groups] != [(c.name,) for c in model.card.classes]:
            matrix = legend.matrix(model.card.classes)
            self.groups = torch.tensor(matrix, dtype=torch.float32, device=device)

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.inference_mode()
    def logits(self, chips: Chips) -> torch.Tensor:
        """Float32 logits ``(N, classes, H, W)`` on the device (invalid pixels included).

        A model with a snow class has it ruled out where the pixel cannot be snow
        (:mod:`geoseg.snow_check`).
        """
        valid = torch.from_numpy(chips.valid).to(self.device, non_blocking=True)
        x = self._model_input(chips.data)
        x.mul_(valid.unsqueeze(1))  # a fresh tensor: in place saves a pass
        total: torch.Tensor | None = None
        for scale in self.tta.scales:
            scaled = _rescale(x, scale)
            for dims in self.tta.flips:
                view = torch.flip(scaled, dims) if dims else scaled
                if self.channels_last:
                    view = view.contiguous(memory_format=torch.channels_last)
                with self._autocast(), network_allocations():
                    out: torch.Tensor = self._forward(view).float()
                out = torch.flip(out, dims) if dims else out
                out = _rescale(out, 1.0 / scale) if scale != 1.0 else out
                total = out if total is None else total + out
        assert total is not None  # at least the chip as it is
        logits = total / self.tta.views if self.tta.views > 1 else total
        if self.snow_check is not None:
            bands = self.snow_check.bands
            raw = _to_device(np.ascontiguousarray(chips.data[:, list(bands)]), self.device)
            self.snow_check.rule_out_logits(logits, self.transform.reflectance_torch(raw, bands))
        return logits

    def _model_input(self, data: np.ndarray) -> torch.Tensor:
        """The transformed chips as a fresh float32 tensor on the device.

        On the CPU, 8- and 16-bit chips are looked up in a table of every value's input (the
        same values, a third of the time); elsewhere the transform runs on the device.
        """
        if self.device.type == "cpu":
            looked_up = self.transform.apply_by_table(np.ascontiguousarray(data))
            if looked_up is not None:
                return torch.from_numpy(looked_up)
        return self.transform.apply_torch(_to_device(data, self.device))

    def _forward(self, view: torch.Tensor) -> torch.Tensor:
        """The network's output: compiled where that works, else as it is."""
        if self.compiled is not None:
            try:
                return self.compiled(view)
            except Exception as error:  # whatever the compiler raised
                first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                log.warning(
                    "torch.compile failed (%s: %s): the network runs uncompiled",
                    type(error).__name__,
                    first[:200],
                )
                self.compiled = None
        out: torch.Tensor = self.network(view)
        return out

    def with_transform(self, transform: InputTransform) -> Predictor:
        """The same predictor (same network, device, legend) for a scene with other radiometry."""
        other = copy.copy(self)
        other.transform = transform
        return other

    @torch.inference_mode()
    def probabilities(self, chips: Chips) -> torch.Tensor:
        """Class probabilities ``(N, legend classes, H, W)`` on the device (summed per group)."""
        probabilities = torch.softmax(self.logits(chips), dim=1)
        if self.groups is None:
            return probabilities
        return torch.einsum("nchw,cg->nghw", probabilities, self.groups)

    @torch.inference_mode()
    def fuse(
        self, dates: list[tuple[Predictor, Chips]]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Classes of chips seen on several dates: the most probable after averaging.

        Returns
        -------
        classes : np.ndarray
            ``(N, H, W)`` uint8 class ids, :data:`NODATA_CLASS` where no date is valid.
        per_date : np.ndarray
            ``(dates, N, H, W)`` uint8 class ids of each date alone (nodata where invalid).
        confidence : np.ndarray
            ``(N, H, W)`` uint8: the averaged probability of the chosen class in percent,
            :data:`NODATA_CLASS` where no date is valid.
        """
        total: torch.Tensor | None = None
        count: torch.Tensor | None = None
        singles = []
        for predictor, chips in dates:
            valid = torch.from_numpy(chips.valid).to(self.device)
            probabilities = predictor.probabilities(chips) * valid.unsqueeze(1)
            singles.append(self._ids(probabilities, valid))
            total = probabilities if total is None else total + probabilities
            count = valid.float() if count is None else count + valid.float()
        assert total is not None and count is not None  # at least one date
        mean = total / count.clamp_min(1).unsqueeze(1)
        fused = self._ids(mean, count > 0)
        return fused, np.stack(singles), _percent(mean, count > 0)

    def _ids(self, scores: torch.Tensor, valid: torch.Tensor) -> np.ndarray:
        classes = channel_argmax(scores, torch.uint8)
        if not self.lookup_is_identity:
            classes = self.lookup[classes.long()]  # (a uint8 index would be read as a mask)
        classes.masked_fill_(~valid, NODATA_CLASS)
        result: np.ndarray = classes.cpu().numpy()
        return result

    @torch.inference_mode()
    def scores(self, chips: Chips) -> torch.Tensor:
        """Per-class scores ``(N, legend classes, H, W)`` whose argmax is the delivered class.

        The logits themselves for the model's own classes; for a view, the summed
        probabilities of each group.
        """
        logits = self.logits(chips)
        if self.groups is None:
            return logits
        probabilities = torch.softmax(logits, dim=1)
        return torch.einsum("nchw,cg->nghw", probabilities, self.groups)

    def auto_batch_size(self, shape: tuple[int, int], cap: int = 64) -> int:
        """Largest batch that fits in free device memory, from one measured forward pass.

        On the CPU every core already works on each tile, so batching gains little and costs
        activation memory (U-Net-ResNet18 on 512 px tiles: 170 MB a tile): 1.
        """
        if not self.cuda:
            return 1
        bands = len(self.model.card.bands)
        probe = Chips(np.zeros((1, bands, *shape), np.uint16), np.ones((1, *shape), bool))
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        base = torch.cuda.memory_allocated(self.device)
        self.classify(probe)
        per_tile = max(torch.cuda.max_memory_allocated(self.device) - base, 1)
        free, _ = torch.cuda.mem_get_info(self.device)
        # keep 40% of free memory as headroom for the allocator and other processes
        return int(max(1, min(cap, 0.6 * free // per_tile)))

    @torch.inference_mode()
    def classify_with_confidence(self, chips: Chips) -> tuple[np.ndarray, np.ndarray]:
        """Class ids and confidence ``(N, H, W)`` uint8 each, nodata where the input is invalid.

        Confidence is the probability of the delivered class in percent (0-100): for a view,
        the summed probability of the group, so it speaks of the class the map shows.
        """
        logits = self.logits(chips)
        probabilities = torch.softmax(logits, dim=1)
        if self.groups is not None:
            probabilities = torch.einsum("nchw,cg->nghw", probabilities, self.groups)
        # the classes from the same scores as classify (the logits for the model's own
        # classes): a softmax can round two close logits to one probability
        scores = logits if self.groups is None else probabilities
        valid = torch.from_numpy(chips.valid).to(self.device)
        return self._ids(scores, valid), _percent(probabilities, valid)

    @torch.inference_mode()
    def classify(self, chips: Chips) -> np.ndarray:
        """Class ids ``(N, H, W)`` uint8, :data:`NODATA_CLASS` where the input is invalid."""
        return self._ids(self.scores(chips), torch.from_numpy(chips.valid).to(self.device))


def cxx_compiler() -> str | None:
    """The C++ compiler ``torch.compile`` would use on the CPU (``$CXX`` or g++), if found."""
    return shutil.which(os.environ.get("CXX") or "g++")


def should_compile(requested: bool, device: torch.device) -> bool:
    """Whether to ``torch.compile`` the network: as requested, if it can be done.

    On the CPU, compiling needs a C++ compiler; without one the request is dropped with a
    one-line warning. It stays a request, never a default: compiled kernels round differently,
    so near-ties could get another class than in an uncompiled run of a tile of the same scene.
    """
    if not requested:
        return False
    if device.type == "cpu" and cxx_compiler() is None:
        log.warning("--compile: no C++ compiler (g++ or $CXX) found: the network runs as it is")
        return False
    return True


def channel_argmax(scores: torch.Tensor, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """``scores.argmax(dim=1)`` of ``(N, C, H, W)`` scores: the first channel of equal maxima.

    A running comparison over the few channels, each step vectorized over the pixels: ATen's CPU
    argmax along the strided channel dimension took 19.5 ms on a 5 x 512 x 512 chip, this 2.5 ms.
    ``dtype`` is the result's (``torch.uint8`` for up to 256 channels writes an eighth of the
    bytes of ATen's int64).
    """
    best = scores[:, 0]
    ids = torch.zeros(best.shape, dtype=dtype, device=scores.device)
    for channel in range(1, scores.shape[1]):
        candidate = scores[:, channel]
        ids.masked_fill_(candidate > best, channel)  # strictly greater: the first maximum stays
        best = torch.maximum(best, candidate)
    return ids


def _percent(probabilities: torch.Tensor, valid: torch.Tensor) -> np.ndarray:
    """The top probability ``(N, H, W)`` in percent as uint8, :data:`NODATA_CLASS` where invalid."""
    top = torch.round(probabilities.float().amax(dim=1) * 100).clamp(0, 100).to(torch.uint8)
    top = torch.where(valid, top, torch.full_like(top, NODATA_CLASS))
    result: np.ndarray = top.cpu().numpy()
    return result


def _to_device(data: np.ndarray, device: torch.device) -> torch.Tensor:
    data = np.ascontiguousarray(data)
    unsigned16 = data.dtype == np.uint16
    if unsigned16:
        # torch has no uint16 arithmetic: send the bits as int16 and unwrap them on the device,
        # which moves half the bytes of widening to int32 on the host
        data = data.view(np.int16)
    elif data.dtype == np.uint32:
        data = data.astype(np.int64)
    host = torch.from_numpy(data)
    if device.type == "cuda":
        host = host.pin_memory()  # page-locked, so the copy is a true asynchronous DMA
    moved = host.to(device, non_blocking=True)
    return moved.to(torch.int32) & 0xFFFF if unsigned16 else moved


def _rescale(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``(N, C, H, W)`` resampled by ``scale``: area-averaged when smaller, bilinear when larger.

    Both are local and depend only on the position on the chip's grid, so chips placed on a
    common grid give the same values wherever they overlap (away from their edges).
    """
    if scale == 1.0:
        return x
    size = (round(x.shape[-2] * scale), round(x.shape[-1] * scale))
    if scale < 1.0:
        return nn.functional.interpolate(x, size=size, mode="area")
    return nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)


def grid_origin(transform: object) -> tuple[int, int]:
    """``(row, col)`` of a grid's first pixel on the absolute pixel grid (from the CRS origin).

    A network that downsamples (by 2 for Dynamic World's, by 32 for a U-Net) sees a pixel
    differently depending on where its downsampling grid falls. Tiles are planned and chips
    padded so that this grid lies on the absolute pixel grid (see
    :func:`~geoseg.tiling.axis_spans`), so every file cut from one scene (a tile archive, a
    crop) puts the same ground on the same downsampling grid.

    The index is the floor, not the nearest integer: a grid whose origin lies half a pixel off
    the CRS's round numbers (Landsat resampled to 10 m: x = 440985 m) must shift by exactly the
    whole pixels between two files, and rounding half to even would shift some files by one more
    (measured: a Landsat tile archive agreed with its whole scene on 99.30% of pixels with
    rounding, on 99.96% with the floor).

    >>> from affine import Affine
    >>> grid_origin(Affine(10, 0, 435730, 0, -10, 4179460))
    (-417946, 43573)
    >>> [grid_origin(Affine(10, 0, x, 0, -10, 0))[1] for x in (440985, 441015)]
    [44098, 44101]
    """
    a, e = getattr(transform, "a", 1.0), getattr(transform, "e", -1.0)
    c, f = getattr(transform, "c", 0.0), getattr(transform, "f", 0.0)
    if not a or not e:
        return (0, 0)
    # a millionth of a pixel absorbs floating-point error on grids that sit on round numbers
    return (math.floor(f / e + 1e-6), math.floor(c / a + 1e-6))


def pad_chip(
    data: np.ndarray,
    valid: np.ndarray,
    shape: tuple[int, int],
    before: tuple[int, int] = (0, 0),
) -> tuple[np.ndarray, np.ndarray]:
    """Pad a ``(bands, h, w)`` chip and its mask to ``shape``.

    ``before`` rows and columns go before the chip (to align it:
    :meth:`~geoseg.tiling.TilePlan.before`), the rest after it. Padded pixels are invalid, so
    they become 0 after normalization.
    """
    bands, h, w = data.shape
    if (h, w) == shape:
        return data, valid
    top, left = before
    padded = np.zeros((bands, *shape), dtype=data.dtype)
    padded[:, top : top + h, left : left + w] = data
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + h, left : left + w] = valid
    return padded, mask


def batched(items: list[Chips], batch_size: int) -> Iterator[Chips]:
    """Concatenate single chips into batches of at most ``batch_size``."""
    for i in range(0, len(items), batch_size):
        group = items[i : i + batch_size]
        yield Chips(
            np.concatenate([c.data for c in group]), np.concatenate([c.valid for c in group])
        )


@torch.no_grad()
def probabilities_normalized(
    network: nn.Module,
    image: np.ndarray,
    tile: int,
    overlap: int,
    multiple: int = 32,
    device: torch.device | None = None,
    batch_size: int = 4,
    snow_check: SnowCheck | None = None,
    reflectance: np.ndarray | None = None,
) -> np.ndarray:
    """Class probabilities ``(classes, H, W)`` float32 of a model-input ``(bands, H, W)`` image.

    Tiles, their owned cores and chip padding are prediction's own (:func:`plan_tiles` on the
    image's own grid, :func:`core_patch`), so scores describe what ``predict`` delivers.

    Parameters
    ----------
    network : nn.Module
        Maps ``(N, bands, h, w)`` to logits ``(N, classes, h, w)``.
    image : np.ndarray
        Model input (normalized), 0 at invalid pixels.
    tile, overlap : int
        Tile side and overlap in pixels.
    multiple : int
        Chips are zero-padded to a multiple of this (the architecture's requirement).
    device : torch.device, optional
        Where to run (default CPU).
    batch_size : int
        Tiles per forward pass.
    snow_check, reflectance : SnowCheck and np.ndarray, optional
        The model's snow check (:meth:`SnowCheck.for_card`) and the image's ``(bands, H, W)``
        reflectance: snow ruled out where it cannot be, as prediction does.
    """
    device = device or torch.device("cpu")
    bands, height, width = image.shape
    plan = plan_tiles(height, width, tile, min(overlap, (tile - 1) // 2), multiple=multiple)
    shape = plan.chip_shape
    tiles = list(plan)
    chips: dict[tuple[int, int], np.ndarray] = {}
    was_training = network.training
    network.eval()
    for first in range(0, len(tiles), batch_size):
        chunk = tiles[first : first + batch_size]
        batch = np.zeros((len(chunk), bands, *shape), dtype=np.float32)
        for k, t in enumerate(chunk):
            top, left = plan.before(t)
            batch[k, :, top : top + t.rows.size, left : left + t.cols.size] = image[
                :, t.rows.start : t.rows.stop, t.cols.start : t.cols.stop
            ]
        logits = network(torch.from_numpy(batch).to(device))
        probabilities = torch.softmax(logits.float(), dim=1).cpu().numpy()
        for k, t in enumerate(chunk):
            top, left = plan.before(t)
            chips[(t.row, t.col)] = probabilities[
                k, :, top : top + t.rows.size, left : left + t.cols.size
            ]
    network.train(was_training)
    out = assemble(plan, chips)
    if snow_check is not None:
        if reflectance is None:
            raise ValueError("the snow check needs the image's reflectance")
        snow_check.rule_out_probabilities(out, reflectance)
    return out


def classify_normalized(
    network: nn.Module,
    image: np.ndarray,
    tile: int,
    overlap: int,
    multiple: int = 32,
    device: torch.device | None = None,
    batch_size: int = 4,
    groups: np.ndarray | None = None,
    snow_check: SnowCheck | None = None,
    reflectance: np.ndarray | None = None,
) -> np.ndarray:
    """Class index ``(H, W)`` uint8 of every pixel of a model-input ``(bands, H, W)`` image.

    With ``groups`` (a ``(classes, outputs)`` 0/1 matrix, see
    :meth:`geoseg.models.card.Legend.matrix`) the probabilities of each group are summed and the
    index is the group's, as prediction delivers a legend. ``snow_check`` and ``reflectance``
    as for :func:`probabilities_normalized`.
    """
    probabilities = probabilities_normalized(
        network, image, tile, overlap, multiple, device, batch_size, snow_check, reflectance
    )
    if groups is not None:
        probabilities = np.einsum("chw,cg->ghw", probabilities, groups)
    out: np.ndarray = probabilities.argmax(axis=0).astype(np.uint8)
    return out
