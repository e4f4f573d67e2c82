"""Convert the Dynamic World v1 forward network (TensorFlow SavedModel) into a geoseg model file.

A one-off: it needs ``tensorflow-cpu`` (never at run time), the SavedModel folder and geoseg.

    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu torch rasterio ...
    PYTHONPATH=. /tmp/tfvenv/bin/python scripts/convert_dynamic_world.py \
        ../shared/data/dynamic-world-model geoseg/models/weights/landcover-s2-dw.pt

The TensorFlow variable names are mapped onto :class:`geoseg.models.dynamic_world.DynamicWorldNet`
(kernels transposed from HWIO to OIHW), and the converted network is checked against the
TensorFlow original on random input before the model file is written.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from geoseg.models.catalogue import dynamic_world_card
from geoseg.models.dynamic_world import DynamicWorldNet
from geoseg.models.loading import save_model_file

# TensorFlow layer -> (module path in DynamicWorldNet, batch-norm layer that follows it)
_BLOCKS = {
    "block1": (
        ("conv2d_2", 3),
        ("depthwise_conv2d_1", 4),
        ("conv2d_3", 5),
        ("depthwise_conv2d_2", 6),
        ("conv2d_4", 7),
        ("depthwise_conv2d_3", 8),
    ),
    "block2": (
        ("conv2d_6", 10),
        ("depthwise_conv2d_4", 11),
        ("conv2d_7", 12),
        ("depthwise_conv2d_5", 13),
        ("conv2d_8", 14),
        ("depthwise_conv2d_6", 15),
    ),
    "block3": (
        ("conv2d_10", 17),
        ("depthwise_conv2d_7", 18),
        ("conv2d_11", 19),
        ("depthwise_conv2d_8", 20),
        ("conv2d_12", 21),
        ("depthwise_conv2d_9", 22),
    ),
}
_SKIPS = {"block1": ("conv2d_5", 9), "block2": ("conv2d_9", 16), "block3": ("conv2d_13", 23)}


def layer_map() -> dict[str, tuple[str, int | None]]:
    """Torch module prefix -> (TensorFlow layer, batch-norm index or None)."""
    mapping: dict[str, tuple[str, int | None]] = {
        "stem": ("conv2d", 0),
        "side.0": ("conv2d_1", 1),
        "side.1": ("depthwise_conv2d", 2),
        "head": ("conv2d_14", None),
    }
    for block, layers in _BLOCKS.items():
        for i, (tf_name, bn) in enumerate(layers):
            mapping[f"{block}.main.{i}"] = (tf_name, bn)
        mapping[f"{block}.skip"] = _SKIPS[block]
    return mapping


def convert(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Build the DynamicWorldNet state dict from TensorFlow variables (name -> array)."""
    state: dict[str, torch.Tensor] = {}
    for prefix, (tf_name, bn) in layer_map().items():
        conv = prefix if prefix == "head" else f"{prefix}.conv"
        if tf_name.startswith("depthwise"):
            kernel = variables[f"{tf_name}/depthwise_kernel:0"]  # (kh, kw, C, 1)
            weight = kernel.transpose(2, 3, 0, 1)  # (C, 1, kh, kw)
        else:
            weight = variables[f"{tf_name}/kernel:0"].transpose(3, 2, 0, 1)  # HWIO -> OIHW
        state[f"{conv}.weight"] = torch.from_numpy(np.ascontiguousarray(weight))
        state[f"{conv}.bias"] = torch.from_numpy(variables[f"{tf_name}/bias:0"])
        if bn is not None:
            name = "batch_normalization" + (f"_{bn}" if bn else "")
            state[f"{prefix}.bn.weight"] = torch.from_numpy(variables[f"{name}/gamma:0"])
            state[f"{prefix}.bn.bias"] = torch.from_numpy(variables[f"{name}/beta:0"])
            state[f"{prefix}.bn.running_mean"] = torch.from_numpy(
                variables[f"{name}/moving_mean:0"]
            )
            state[f"{prefix}.bn.running_var"] = torch.from_numpy(
                variables[f"{name}/moving_variance:0"]
            )
            state[f"{prefix}.bn.num_batches_tracked"] = torch.tensor(0)
    return state


def main(model_dir: str, out: str) -> None:
    """Convert, check against TensorFlow on random input, and write the model file."""
    import tensorflow as tf

    saved = tf.saved_model.load(str(Path(model_dir) / "forward"))
    variables = {v.name: v.numpy() for v in saved.variables}
    network = DynamicWorldNet(9, 9)
    state = convert(variables)
    network.load_state_dict(state, strict=True)
    network.eval()
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (2, 96, 128, 9)).astype(np.float32)
    expected = saved(tf.constant(x)).numpy()
    with torch.no_grad():
        got = network(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    diff = float(np.abs(expected - got).max())
    agree = float((expected.argmax(-1) == got.argmax(-1)).mean())
    print(f"logits max |diff| {diff:.2e}, argmax agreement {agree:.6f} on random input")
    if diff > 1e-3:
        raise SystemExit("the converted network does not reproduce the TensorFlow one")
    save_model_file(Path(out), dynamic_world_card(), network.state_dict())
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
