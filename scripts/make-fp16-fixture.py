#!/usr/bin/env python3
"""Write the tiny dtype fixtures used by oxserve-backend-ort's tests (deterministic bytes, < 1 KB each).

tests/fixtures/models/fp16_add.onnx
    The smallest model with float16 input and output, to check that FP16 tensors go in and come out
    of ONNX Runtime unchanged (no silent cast to f32). Input "x" FLOAT16 [N,4] -> output "y"
    FLOAT16 [N,4] = x + x. opset 13, ir_version 8, no weights.
crates/backend-ort/tests/fixtures/identity_all.onnx
    One Identity per Open Inference Protocol dtype, so every tensor conversion is exercised both
    ways: inputs "in_<type>" [N,2] -> outputs "out_<type>" [N,2] for bool, uint8..uint64,
    int8..int64, float16, float, double and string. opset 13, ir_version 8.

Needs the `onnx` package. Run it with any Python that has it, e.g.

    bash scripts/make-models.sh            # once, creates .venv-models with onnx
    python3 scripts/make-fp16-fixture.py   # re-runs itself under .venv-models when onnx is missing
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT = REPO_ROOT / "tests" / "fixtures" / "models" / "fp16_add.onnx"
IDENTITY_OUT = REPO_ROOT / "crates" / "backend-ort" / "tests" / "fixtures" / "identity_all.onnx"

try:
    import onnx
    from onnx import TensorProto, helper
except ImportError:
    for venv in (".venv-models", ".venv-ort"):
        python = REPO_ROOT / venv / "bin" / "python"
        if python.exists() and Path(sys.prefix).resolve() != (REPO_ROOT / venv).resolve():
            os.execv(str(python), [str(python), __file__, *sys.argv[1:]])
    sys.exit(
        "error: the `onnx` package is missing; run `bash scripts/make-models.sh` "
        "(creates .venv-models) or `pip install onnx`"
    )


def save(model: "onnx.ModelProto", path: Path) -> None:
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    print(f"wrote {path.relative_to(REPO_ROOT)} ({path.stat().st_size} bytes)")


def fp16_add() -> "onnx.ModelProto":
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT16, ["N", 4])
    node = helper.make_node("Add", ["x", "x"], ["y"], name="double")
    graph = helper.make_graph([node], "fp16_add", [x], [y])
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="oxserve"
    )


IDENTITY_TYPES = [
    ("bool", TensorProto.BOOL),
    ("uint8", TensorProto.UINT8),
    ("uint16", TensorProto.UINT16),
    ("uint32", TensorProto.UINT32),
    ("uint64", TensorProto.UINT64),
    ("int8", TensorProto.INT8),
    ("int16", TensorProto.INT16),
    ("int32", TensorProto.INT32),
    ("int64", TensorProto.INT64),
    ("float16", TensorProto.FLOAT16),
    ("float", TensorProto.FLOAT),
    ("double", TensorProto.DOUBLE),
    ("string", TensorProto.STRING),
]


def identity_all() -> "onnx.ModelProto":
    inputs, outputs, nodes = [], [], []
    for name, elem in IDENTITY_TYPES:
        inputs.append(helper.make_tensor_value_info(f"in_{name}", elem, ["N", 2]))
        outputs.append(helper.make_tensor_value_info(f"out_{name}", elem, ["N", 2]))
        nodes.append(helper.make_node("Identity", [f"in_{name}"], [f"out_{name}"]))
    graph = helper.make_graph(nodes, "identity_all", inputs, outputs)
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="oxserve"
    )


def main() -> None:
    save(fp16_add(), OUT)
    save(identity_all(), IDENTITY_OUT)


if __name__ == "__main__":
    main()
