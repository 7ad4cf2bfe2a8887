#!/usr/bin/env python3
"""Generate tests/fixtures/models/image_mean.onnx, the model of the protocol benchmark.

    .venv-models/bin/python scripts/make-image-model.py     # after bash scripts/make-models.sh

Input "image" f32 [N,3,224,224] (one ImageNet-sized image per row); output "mean" f32 [N,3], the
mean of each channel (ReduceMean over H and W). The compute is trivial on purpose: the benchmark in
crates/server/benches/protocols.rs measures what carrying a 600 KB tensor costs over JSON REST,
binary REST and gRPC, and a real network would hide that behind its own compute. Opset 13,
ir_version 8, deterministic bytes, like scripts/make-models.py's models.
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

ROOT = Path(__file__).resolve().parent.parent
PATH = ROOT / "tests/fixtures/models/image_mean.onnx"


def main() -> None:
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["mean"], axes=[2, 3], keepdims=0)],
        "image_mean",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("mean", TensorProto.FLOAT, ["N", 3])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="oxserve-make-models"
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    PATH.write_bytes(model.SerializeToString(deterministic=True))
    # The reference evaluator agrees with numpy on a random image.
    x = np.random.default_rng(7).standard_normal((2, 3, 224, 224)).astype(np.float32)
    (got,) = ReferenceEvaluator(str(PATH)).run(None, {"image": x})
    assert np.allclose(got, x.mean(axis=(2, 3)), atol=1e-5), got
    print(f"wrote {PATH.relative_to(ROOT)} ({PATH.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
