"""How a model's classes become the five-class view: summed group probabilities vs the top class.

geoseg delivers the group whose summed probability is highest ("sum"); Dynamic World's label band,
the teacher's labels, is the single most probable class seen in five classes ("top"). The two
disagree where probability is spread over the classes of one group (trees 0.4, grass 0.3,
crops 0.3: top says forest, sum says farmland). This measures both rules:

- on the held-out block of every training scene of a recipe, against the teacher's labels made
  both ways, at 10 m and, with ``--coarsen 3``, as a 30 m sensor sees the blocks: the teacher
  itself (``landcover-s2-dw``) under each rule is the ceiling of "agreement with the teacher";
- with ``--coarse-grid`` (and a whole ``--coarsen`` factor), predicted on the coarse sensor's own
  grid and each coarse pixel's class repeated back onto the 10 m blocks, as ``geoseg predict
  --no-resample`` runs a Landsat scene, instead of resampled to 10 m as it runs by default;
- with ``--human``, on the human polygons of ``landsat5-amazon-rstoolbox`` (six-band model) and
  ``landsat8-parana`` (RGB model), as ``geoseg evaluate`` scores them.

Figures against the teacher are agreement with a published model, not accuracy.

Usage::

    .venv/bin/python benchmarks/view_rule.py landcover-s2-dw landcover-s2-dw6
    .venv/bin/python benchmarks/view_rule.py landcover-s2-dw landcover-s2-dw6 --coarsen 3
    .venv/bin/python benchmarks/view_rule.py landcover-s2-dw landcover-s2-dw6 --coarsen 1.5
    .venv/bin/python benchmarks/view_rule.py landcover-s2-dw6 --coarsen 3 --coarse-grid
    .venv/bin/python benchmarks/view_rule.py landcover-s2-dw6 --per-class
    .venv/bin/python benchmarks/view_rule.py landcover-s2-dw6 --per-class --confident 0.5
    .venv/bin/python benchmarks/view_rule.py --human
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch

import geoseg.inference
from geoseg.inference import Chips, probabilities_normalized, tile_multiple
from geoseg.io.labels import IGNORE
from geoseg.models.loading import load_model
from geoseg.snow_check import SnowCheck
from geoseg.training.config import load_train_config
from geoseg.training.initialization import load_teacher
from geoseg.training.metrics import ConfusionMatrix, SegmentationMetrics
from geoseg.training.prepare import SceneData, prepare_scene
from geoseg.training.validation import coarsened, model_input

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
RULES = ("sum", "top")


def view(probabilities: np.ndarray, groups: np.ndarray, rule: str) -> np.ndarray:
    """Group index ``(H, W)`` of ``(classes, H, W)`` probabilities under ``rule``."""
    if rule == "sum":
        summed: np.ndarray = np.einsum("chw,cg->ghw", probabilities, groups).argmax(axis=0)
        return summed
    top: np.ndarray = groups.argmax(axis=1)[probabilities.argmax(axis=0)]
    return top


def held_out(
    models: list[str],
    recipe: Path,
    coarsen: float,
    snow: bool = True,
    per_class: bool = False,
    confident: float = 0.0,
    coarse_grid: bool = False,
) -> None:
    """Print each model's agreement per rule and teacher reference on the recipe's blocks.

    The teacher's targets have their snow checked (:mod:`geoseg.snow_check`) as training
    prepares them; the models' own predictions too, as prediction delivers them, unless
    ``snow`` is false. With ``per_class``, each place's IoU and share of pixels per class is
    printed for the delivered rule against the teacher's top class, so a low mIoU can be traced
    to the classes that make it. With ``confident`` above 0, only pixels whose most probable
    teacher class has at least that probability are scored: how much of the gap is the teacher's
    own doubt.
    """
    config = load_train_config(recipe)
    teacher = load_teacher(config)
    prepared: dict[tuple[str, ...], list[SceneData]] = {}
    for name in models:
        model = load_model(name)
        model.network.eval()
        card = model.card
        if card.bands not in prepared:
            prepared[card.bands] = [
                prepare_scene(
                    spec,
                    card.bands,
                    card.classes,
                    Path(config.output) / "prepared",  # the recipe's teacher targets, cached
                    resolve=config.resolve,
                    teacher=teacher,
                    gsd=card.gsd,
                    reflectance_level=card.reflectance_level,
                )
                for spec in config.scenes
            ]
        legend = card.legend()
        snow_check = SnowCheck.for_card(card)
        groups = np.asarray(legend.matrix(card.classes), dtype=np.float32)
        names = [c.name for c in legend.classes]
        pooled = {(r, ref): ConfusionMatrix(len(names)) for r in RULES for ref in RULES}
        blocks: dict[tuple[str, str], dict[str, float]] = {key: {} for key in pooled}
        # each place's pixels, its dates pooled: a place with several dates is also scored so
        places: dict[tuple[str, str], dict[str, ConfusionMatrix]] = {key: {} for key in pooled}
        dated: set[str] = set()
        for scene in prepared[card.bands]:
            if scene.holdout is None or scene.soft is None:
                continue
            if coarse_grid:
                image = on_coarse_grid(scene.image, int(coarsen))
            else:
                image = coarsened(scene.image, coarsen) if coarsen > 1 else scene.image
            probabilities = probabilities_normalized(
                model.network,
                model_input(image, card),
                card.tile_size,
                card.overlap,
                tile_multiple(card),
                torch.device("cpu"),
                snow_check=snow_check if snow else None,
                reflectance=image,
            )
            if coarse_grid:
                probabilities = back_to_fine_grid(probabilities, int(coarsen), scene.shape)
            probabilities = probabilities[:, scene.holdout[0], scene.holdout[1]]
            teacher_soft = scene.soft[:, scene.holdout[0], scene.holdout[1]]
            unlabelled = (scene.labels[scene.holdout] == IGNORE) | (
                teacher_soft.max(axis=0) < confident
            )
            for rule, ref in pooled:
                reference = np.where(unlabelled, IGNORE, view(teacher_soft, groups, ref))
                matrix = ConfusionMatrix(len(names))
                matrix.update(reference, view(probabilities, groups, rule))
                pooled[rule, ref].merge(matrix)
                place = _place(scene.name)
                if place != scene.name:
                    dated.add(place)
                places[rule, ref].setdefault(place, ConfusionMatrix(len(names))).merge(matrix)
                miou = SegmentationMetrics.from_confusion(matrix, names).miou
                if miou is not None:  # None: no class of the view in this block
                    blocks[rule, ref][scene.name] = miou
        for (rule, ref), matrix in pooled.items():
            metrics = SegmentationMetrics.from_confusion(matrix, names)
            per_block = _per_block(blocks[rule, ref])
            over_dates = {
                place: SegmentationMetrics.from_confusion(matrix, names).miou
                for place, matrix in places[rule, ref].items()
                if place in dated
            }
            where = f", teacher's top class >= {confident:g}" if confident > 0 else ""
            print(
                f"{name} (pixels x{coarsen:g}{where}): delivered by {rule}, teacher by {ref}: "
                f"pooled mIoU {metrics.miou:.3f}, pixel accuracy {metrics.pixel_accuracy:.3f}; "
                + ", ".join(f"{k} {v:.3f}" for k, v in per_block.items())
                + "".join(
                    f"; {k} with its dates pooled {v:.3f}"
                    for k, v in over_dates.items()
                    if v is not None
                )
            )
        if per_class:
            by_place = places["sum", "top"]
            _print_per_class(name, {**by_place, "all blocks": pooled["sum", "top"]}, names)


def on_coarse_grid(reflectance: np.ndarray, factor: int) -> np.ndarray:
    """``(bands, H, W)`` averaged over ``factor x factor`` blocks of valid pixels: a coarse grid.

    The last rows and columns, short of a whole block, are averaged as the part they are.
    """
    valid = np.any(reflectance != 0, axis=0).astype(np.float32)
    tensor = torch.from_numpy(np.ascontiguousarray(reflectance, dtype=np.float32))[None]
    weight = torch.from_numpy(valid)[None, None]
    pool = torch.nn.functional.avg_pool2d
    total = pool(tensor * weight, factor, ceil_mode=True)
    count = pool(weight, factor, ceil_mode=True)
    mean: np.ndarray = (total / count.clamp_min(1e-6))[0].numpy()
    return mean


def back_to_fine_grid(values: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """``(C, h, w)`` coarse values repeated onto the ``shape`` grid they were averaged from."""
    fine: np.ndarray = values.repeat(factor, axis=1).repeat(factor, axis=2)
    return fine[:, : shape[0], : shape[1]]


def _print_per_class(name: str, matrices: dict[str, ConfusionMatrix], names: list[str]) -> None:
    """Each place's IoU and reference share per class (delivered by sum, teacher by top)."""
    for place, matrix in matrices.items():
        metrics = SegmentationMetrics.from_confusion(matrix, names)
        total = max(sum(metrics.support), 1)
        cells = [
            f"{n} {'-' if iou is None else f'{iou:.3f}'} ({100 * s / total:.2f}%)"
            for n, iou, s in zip(names, metrics.iou, metrics.support, strict=True)
        ]
        print(f"  {name} {place}: " + ", ".join(cells))


def _place(name: str) -> str:
    """The place of a dated scene name (``NAME-YYYYMMDD``); any other name as it is."""
    place, _, date = name.rpartition("-")
    return place if date.isdigit() else name


def _per_block(scores: dict[str, float]) -> dict[str, float]:
    """Block scores with the dates of one place (``NAME-YYYYMMDD``) averaged into one."""
    places: dict[str, list[float]] = {}
    for name, score in scores.items():
        places.setdefault(_place(name), []).append(score)
    return {place: float(np.mean(values)) for place, values in places.items()}


@contextmanager
def top_class_rule() -> Iterator[None]:
    """Prediction delivers the group of the most probable class while inside."""
    original = geoseg.inference.Predictor.scores

    def scores(self: geoseg.inference.Predictor, chips: Chips) -> torch.Tensor:
        logits = self.logits(chips)
        if self.groups is None:
            return logits
        top = torch.nn.functional.one_hot(logits.argmax(dim=1), logits.shape[1])
        return torch.einsum("nhwc,cg->nghw", top.float(), self.groups)

    geoseg.inference.Predictor.scores = scores  # type: ignore[method-assign]
    try:
        yield
    finally:
        geoseg.inference.Predictor.scores = original  # type: ignore[method-assign]


def human() -> None:
    """Print each rule's scores on the human labels, each scene with the model for its bands."""
    # a sibling script (benchmarks/ is on the path when this one runs): one list of the scenes
    from human_labels import SCENES, score

    for rule in RULES:
        for labelled in SCENES:
            model = "landcover-rgb-dw" if labelled.unnamed_order else "landcover-s2-dw6"
            with top_class_rule() if rule == "top" else nullcontext():
                row = score(model, labelled, resample=True)
            print(f"delivered by {rule}: {row}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="models scored on the held-out blocks")
    parser.add_argument("--recipe", type=Path, default=REPO / "configs" / "train_dw6.yaml")
    # fractional factors too: 1.25 and 1.5 are 12.5 m and 15 m pixels seen from 10 m
    parser.add_argument("--coarsen", type=float, default=1.0)
    parser.add_argument("--human", action="store_true", help="score the human polygons too")
    parser.add_argument(
        "--per-class", action="store_true", help="IoU and share per class of every place"
    )
    parser.add_argument(
        "--confident",
        type=float,
        default=0.0,
        help="score only pixels whose top teacher class has at least this probability",
    )
    parser.add_argument(
        "--no-snow-check", action="store_true", help="the models' snow as they predict it"
    )
    parser.add_argument(
        "--coarse-grid",
        action="store_true",
        help="predict on the coarse sensor's grid (--coarsen N, whole N), not resampled to 10 m",
    )
    args = parser.parse_args()
    if args.coarse_grid and (args.coarsen < 2 or args.coarsen != int(args.coarsen)):
        parser.error("--coarse-grid needs a whole --coarsen factor of 2 or more")
    logging.basicConfig(level=logging.WARNING)
    if args.models:
        held_out(
            args.models,
            args.recipe,
            args.coarsen,
            snow=not args.no_snow_check,
            per_class=args.per_class,
            confident=args.confident,
            coarse_grid=args.coarse_grid,
        )
    if args.human:
        human()


if __name__ == "__main__":
    main()
