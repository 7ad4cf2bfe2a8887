#!/usr/bin/env python3
"""Generate oxserve's example and test ONNX models (deterministic, fixed seeds).

Regenerate everything with:

    bash scripts/make-models.sh

(that creates/uses the pinned virtualenv ``.venv-models/`` and runs this file
from the repository root). Running this file directly also works if numpy,
onnx, scikit-learn, skl2onnx and torch-model-archiver are importable / on PATH.

Files written (paths relative to the repository root):

examples/models/tiny.onnx
    MLP 64 -> 64 (Relu) -> 10 with random weights (numpy seed 0), built with
    onnx.helper. Input "input" f32 [N,64], output "output" f32 [N,10].
    opset 13, ir_version 8. The quick-start / smoke-test model.
examples/models/digits_mlp.onnx
    sklearn MLPClassifier(hidden_layer_sizes=(64,)) trained on load_digits
    (train split of train_test_split(test_size=0.25, random_state=0)) and
    exported with skl2onnx (zipmap off). Input "input" f32 [N,64]; outputs
    "label" i64 [N] and "probabilities" f32 [N,10]. A "real" classifier demo.
examples/model-store/tiny/, examples/model-store/digits/
    Unpacked TorchServe "no-archive" model folders (model file,
    model-config.yaml, MAR-INF/MANIFEST.json, digits also index_to_name.json).
    MANIFEST createdOn is a fixed string so output is byte-stable.
examples/inputs/tiny.json       one 64-float sample for tiny (seed 1, 4 dp).
examples/inputs/digit.json      first sample of the digits test split.
examples/inputs/expected.json   reference answers computed here with
    onnx.reference.ReferenceEvaluator (tiny, tiny_batch, first 5 digits test
    samples; digits labels are asserted equal to sklearn's predict()).
tests/fixtures/models/multi_io.onnx
    inputs x i64 [N,4], y f32 [N,4]; outputs sum f32 = Cast(x)+y, x2 i64 = x*2.
tests/fixtures/models/fixed_batch.onnx
    input x f32 [1,4] (no dynamic dim) -> y f32 [1,4] = x*3.
tests/fixtures/models/slow.onnx
    x f32 [N,1] -> y f32 [N,1]: expand to [N,256,256], 40 chained MatMuls with
    one shared 256x256 weight, ReduceMean, Reshape. Deliberately slow (tens of
    ms per row) so tests can fill queues / trigger timeouts.
tests/fixtures/expected_fixtures.json
    reference outputs for the three fixtures above.
tests/fixtures/torch-model-archiver/tiny_ts.mar
    produced by the real ``torch-model-archiver`` CLI from tiny.onnx with
    handler ``base_handler``, config src/model-config.yaml (contains an unknown
    key ``customKey``) and extra file src/notes.txt. Not byte-stable (the
    archiver stamps the current time into MANIFEST.json).

All ONNX files use opset 13 and ir_version <= 9 so tract 0.23 can load them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

REPO = Path(__file__).resolve().parent.parent
OPSET = 13
IR_VERSION = 8
PRODUCER = "oxserve-make-models"
FIXED_CREATED_ON = "01/01/2025 00:00:00"  # TorchServe format dd/mm/YYYY HH:MM:SS
ARCHIVER_VERSION = "0.12.0"

EX_MODELS = REPO / "examples" / "models"
EX_STORE = REPO / "examples" / "model-store"
EX_INPUTS = REPO / "examples" / "inputs"
FIX = REPO / "tests" / "fixtures"
FIX_MODELS = FIX / "models"
FIX_TMA = FIX / "torch-model-archiver"


# --------------------------------------------------------------------------- utils


def rel(p: Path) -> str:
    return str(p.relative_to(REPO))


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"  wrote {rel(path)} ({path.stat().st_size} bytes)")


def write_json(path: Path, obj, indent: int | None = 2) -> None:
    write_text(path, json.dumps(obj, indent=indent) + "\n")


def save_model(model: onnx.ModelProto, path: Path) -> None:
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version <= 9, f"{path}: ir_version {model.ir_version} > 9"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString(deterministic=True))
    print(f"  wrote {rel(path)} ({path.stat().st_size} bytes)")


def f32_list(a) -> list:
    """float32 array -> nested python floats (exact float32 values)."""
    return np.asarray(a, dtype=np.float32).astype(np.float64).tolist()


def make_model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=PRODUCER,
    )
    model.ir_version = IR_VERSION
    return model


def vi(name: str, elem: int, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def run_ref(path: Path, feeds: dict) -> list:
    return ReferenceEvaluator(str(path)).run(None, feeds)


def write_store_folder(
    folder: Path, model_src: Path, model_name: str, config_yaml: str, extra: dict | None = None
) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    dst = folder / model_src.name
    shutil.copyfile(model_src, dst)
    print(f"  wrote {rel(dst)} ({dst.stat().st_size} bytes)")
    write_text(folder / "model-config.yaml", config_yaml)
    for name, obj in (extra or {}).items():
        write_json(folder / name, obj)
    manifest = {
        "createdOn": FIXED_CREATED_ON,
        "runtime": "python",
        "model": {
            "modelName": model_name,
            "serializedFile": model_src.name,
            "handler": "tensor",
            "modelVersion": "1.0",
            "configFile": "model-config.yaml",
        },
        "archiverVersion": ARCHIVER_VERSION,
    }
    # Same formatting torch-model-archiver uses (json.dumps(indent=2)).
    write_text(folder / "MAR-INF" / "MANIFEST.json", json.dumps(manifest, indent=2))


# --------------------------------------------------------------------------- tiny


def build_tiny() -> Path:
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((64, 64)) / 8.0).astype(np.float32)
    b1 = (rng.standard_normal(64) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((64, 10)) / 8.0).astype(np.float32)
    b2 = (rng.standard_normal(10) * 0.1).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["input", "w1"], ["h0"], name="fc1_matmul"),
        helper.make_node("Add", ["h0", "b1"], ["h1"], name="fc1_bias"),
        helper.make_node("Relu", ["h1"], ["h2"], name="relu"),
        helper.make_node("MatMul", ["h2", "w2"], ["h3"], name="fc2_matmul"),
        helper.make_node("Add", ["h3", "b2"], ["output"], name="fc2_bias"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_mlp",
        [vi("input", TensorProto.FLOAT, ["N", 64])],
        [vi("output", TensorProto.FLOAT, ["N", 10])],
        initializer=[
            numpy_helper.from_array(w1, "w1"),
            numpy_helper.from_array(b1, "b1"),
            numpy_helper.from_array(w2, "w2"),
            numpy_helper.from_array(b2, "b2"),
        ],
    )
    path = EX_MODELS / "tiny.onnx"
    save_model(make_model(graph), path)
    return path


# --------------------------------------------------------------------------- digits


def rename_value(model: onnx.ModelProto, old: str, new: str) -> None:
    g = model.graph
    for coll in (g.input, g.output, g.value_info):
        for v in coll:
            if v.name == old:
                v.name = new
    for init in g.initializer:
        if init.name == old:
            init.name = new
    for node in g.node:
        for i, n in enumerate(node.input):
            if n == old:
                node.input[i] = new
        for i, n in enumerate(node.output):
            if n == old:
                node.output[i] = new


def set_batch_dim(vinfo: onnx.ValueInfoProto, name: str = "N") -> None:
    d0 = vinfo.type.tensor_type.shape.dim[0]
    d0.Clear()
    d0.dim_param = name


def build_digits():
    from skl2onnx import to_onnx
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    clf = MLPClassifier(hidden_layer_sizes=(64,), random_state=0, max_iter=1000)
    clf.fit(X_train, y_train)
    acc = float(clf.score(X_test, y_test))
    print(f"  digits MLPClassifier test accuracy: {acc:.4f} ({len(y_test)} test samples)")

    model = to_onnx(
        clf,
        X[:1].astype(np.float32),
        options={id(clf): {"zipmap": False}},
        target_opset={"": OPSET, "ai.onnx.ml": 3},
    )
    # Normalise I/O names and batch dims.
    assert len(model.graph.input) == 1
    if model.graph.input[0].name != "input":
        rename_value(model, model.graph.input[0].name, "input")
    out_names = [o.name for o in model.graph.output]
    assert len(out_names) == 2, out_names
    for cur, want in zip(out_names, ["label", "probabilities"]):
        if cur != want:
            rename_value(model, cur, want)
    for v in list(model.graph.input) + list(model.graph.output):
        set_batch_dim(v)
    model.graph.name = "digits_mlp"
    ops = sorted({(n.domain or "ai.onnx", n.op_type) for n in model.graph.node})
    print(f"  digits ops: {ops}; ir_version={model.ir_version}; "
          f"opsets={[(o.domain or 'ai.onnx', o.version) for o in model.opset_import]}")
    path = EX_MODELS / "digits_mlp.onnx"
    save_model(model, path)
    return path, clf, X_test, acc


# --------------------------------------------------------------------------- fixtures


def build_multi_io() -> Path:
    nodes = [
        helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["xf", "y"], ["sum"]),
        helper.make_node("Mul", ["x", "two"], ["x2"]),
    ]
    graph = helper.make_graph(
        nodes,
        "multi_io",
        [vi("x", TensorProto.INT64, ["N", 4]), vi("y", TensorProto.FLOAT, ["N", 4])],
        [vi("sum", TensorProto.FLOAT, ["N", 4]), vi("x2", TensorProto.INT64, ["N", 4])],
        initializer=[numpy_helper.from_array(np.array(2, dtype=np.int64), "two")],
    )
    path = FIX_MODELS / "multi_io.onnx"
    save_model(make_model(graph), path)
    return path


def build_fixed_batch() -> Path:
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "three"], ["y"])],
        "fixed_batch",
        [vi("x", TensorProto.FLOAT, [1, 4])],
        [vi("y", TensorProto.FLOAT, [1, 4])],
        initializer=[numpy_helper.from_array(np.array(3.0, dtype=np.float32), "three")],
    )
    path = FIX_MODELS / "fixed_batch.onnx"
    save_model(make_model(graph), path)
    return path


SLOW_DIM = 256
SLOW_STEPS = 40


def slow_weight() -> np.ndarray:
    rng = np.random.default_rng(3)
    w = np.eye(SLOW_DIM) + rng.standard_normal((SLOW_DIM, SLOW_DIM)) * 0.001
    return w.astype(np.float32)


def build_slow() -> Path:
    w = slow_weight()
    nodes = [
        # [N,1] -> [N,1,1] -> broadcast Mul with W -> [N,256,256] (= x * W).
        # Not Expand: tract 0.23 tries to push an Expand's broadcast axis
        # through the MatMul chain (which would also remove the intended cost)
        # and fails in its declutter pass.
        helper.make_node("Unsqueeze", ["x", "unsq_axes"], ["x3"]),
        helper.make_node("Mul", ["x3", "W"], ["h0"]),
    ]
    for i in range(SLOW_STEPS):
        nodes.append(helper.make_node("MatMul", [f"h{i}", "W"], [f"h{i + 1}"], name=f"matmul_{i}"))
    nodes += [
        helper.make_node("ReduceMean", [f"h{SLOW_STEPS}"], ["m"], axes=[1, 2], keepdims=0),
        helper.make_node("Reshape", ["m", "out_shape"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "slow",
        [vi("x", TensorProto.FLOAT, ["N", 1])],
        [vi("y", TensorProto.FLOAT, ["N", 1])],
        initializer=[
            numpy_helper.from_array(np.array([2], dtype=np.int64), "unsq_axes"),
            numpy_helper.from_array(w, "W"),
            numpy_helper.from_array(np.array([-1, 1], dtype=np.int64), "out_shape"),
        ],
    )
    path = FIX_MODELS / "slow.onnx"
    save_model(make_model(graph), path)
    return path


def time_slow(path: Path, x: np.ndarray) -> dict:
    sess = ReferenceEvaluator(str(path))
    sess.run(None, {"x": x})  # warm-up
    reps = 3
    t0 = time.perf_counter()
    for _ in range(reps):
        sess.run(None, {"x": x})
    ref_ms = (time.perf_counter() - t0) / reps * 1e3

    w = slow_weight()
    t0 = time.perf_counter()
    for _ in range(reps):
        h = x[:, :, None] * w
        for _ in range(SLOW_STEPS):
            h = h @ w
        np_y = h.mean(axis=(1, 2)).reshape(-1, 1)
    np_ms = (time.perf_counter() - t0) / reps * 1e3
    return {"reference_ms": ref_ms, "numpy_ms": np_ms, "numpy_y": np_y}


# --------------------------------------------------------------------------- .mar


def build_mar(tiny_path: Path) -> Path:
    src = FIX_TMA / "src"
    write_text(
        src / "model-config.yaml",
        "# Config packed into tiny_ts.mar by torch-model-archiver.\n"
        "# customKey is deliberately unknown to TorchServe/oxserve.\n"
        "minWorkers: 1\n"
        "maxWorkers: 2\n"
        "batchSize: 2\n"
        "maxBatchDelay: 20\n"
        "customKey: hello\n",
    )
    write_text(src / "notes.txt", "Extra file packed into tiny_ts.mar via --extra-files.\n")
    exe = shutil.which("torch-model-archiver")
    if exe is None:
        raise SystemExit("torch-model-archiver not on PATH (run via scripts/make-models.sh)")
    cmd = [
        exe,
        "--model-name", "tiny_ts",
        "--version", "1.0",
        "--serialized-file", rel(tiny_path),
        "--handler", "base_handler",
        "--config-file", rel(src / "model-config.yaml"),
        "--extra-files", rel(src / "notes.txt"),
        "--export-path", rel(FIX_TMA),
        "--force",
    ]
    print("  $ torch-model-archiver " + " ".join(cmd[1:]))
    subprocess.run(cmd, cwd=REPO, check=True)
    mar = FIX_TMA / "tiny_ts.mar"
    print(f"  wrote {rel(mar)} ({mar.stat().st_size} bytes)")
    with zipfile.ZipFile(mar) as z:
        print("  .mar entries: " + ", ".join(sorted(z.namelist())))
        print("  MAR-INF/MANIFEST.json:\n" + z.read("MAR-INF/MANIFEST.json").decode())
    return mar


# --------------------------------------------------------------------------- main


def main() -> int:
    print(f"numpy {np.__version__}, onnx {onnx.__version__}")

    print("[tiny]")
    tiny = build_tiny()
    write_store_folder(
        EX_STORE / "tiny",
        tiny,
        "tiny",
        "minWorkers: 1\nmaxWorkers: 1\nbatchSize: 4\nmaxBatchDelay: 5\nresponseTimeout: 120\n",
    )
    tiny_x = np.round(np.random.default_rng(1).standard_normal(64), 4)
    tiny_in = [float(v) for v in tiny_x]
    write_json(EX_INPUTS / "tiny.json", tiny_in, indent=None)
    (tiny_out,) = run_ref(tiny, {"input": np.array([tiny_in], dtype=np.float32)})
    batch_x = np.round(np.random.default_rng(2).standard_normal((3, 64)), 4)
    batch_in = [[float(v) for v in row] for row in batch_x]
    (batch_out,) = run_ref(tiny, {"input": np.array(batch_in, dtype=np.float32)})
    assert tiny_out.shape == (1, 10) and batch_out.shape == (3, 10)
    # Cross-check the reference evaluator with plain numpy.
    w = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(tiny)).graph.initializer}
    xb = np.array(batch_in, np.float32)
    np_out = np.maximum(xb @ w["w1"] + w["b1"], 0) @ w["w2"] + w["b2"]
    assert np.allclose(np_out, batch_out, atol=1e-5)

    print("[digits]")
    digits, clf, X_test, acc = build_digits()
    write_store_folder(
        EX_STORE / "digits",
        digits,
        "digits",
        "minWorkers: 1\nbatchSize: 8\nmaxBatchDelay: 10\n",
        extra={"index_to_name.json": {str(i): str(i) for i in range(10)}},
    )
    digit_in = [float(v) for v in X_test[0]]
    write_json(EX_INPUTS / "digit.json", digit_in, indent=None)
    x5 = X_test[:5].astype(np.float32)
    labels, probs = run_ref(digits, {"input": x5})
    sk_labels = clf.predict(X_test[:5])
    assert labels.dtype == np.int64 and labels.shape == (5,), (labels.dtype, labels.shape)
    assert probs.dtype == np.float32 and probs.shape == (5, 10), (probs.dtype, probs.shape)
    assert np.array_equal(labels, sk_labels), (labels, sk_labels)
    assert np.allclose(probs, clf.predict_proba(X_test[:5]), atol=1e-4)
    # Whole test split: ONNX labels must match sklearn.
    all_labels, _ = run_ref(digits, {"input": X_test.astype(np.float32)})
    n_diff = int(np.sum(all_labels != clf.predict(X_test)))
    print(f"  onnx vs sklearn label mismatches on full test split: {n_diff}")
    assert n_diff == 0

    write_json(
        EX_INPUTS / "expected.json",
        {
            "tiny": {"input": tiny_in, "output": f32_list(tiny_out[0])},
            "tiny_batch": {"input": batch_in, "output": f32_list(batch_out)},
            "digits": [
                {
                    "input": [float(v) for v in X_test[i]],
                    "label": int(labels[i]),
                    "probabilities": f32_list(probs[i]),
                }
                for i in range(5)
            ],
        },
    )

    print("[fixtures]")
    multi = build_multi_io()
    fixed = build_fixed_batch()
    slow = build_slow()
    mi_sum, mi_x2 = run_ref(
        multi,
        {"x": np.array([[1, 2, 3, 4]], np.int64), "y": np.array([[0.5] * 4], np.float32)},
    )
    assert mi_x2.dtype == np.int64 and mi_sum.dtype == np.float32
    (fb_y,) = run_ref(fixed, {"x": np.array([[1, 2, 3, 4]], np.float32)})
    slow_x = np.array([[1.0]], np.float32)
    (slow_y,) = run_ref(slow, {"x": slow_x})
    assert slow_y.shape == (1, 1) and np.all(np.isfinite(slow_y))
    timing = time_slow(slow, slow_x)
    assert np.allclose(timing["numpy_y"], slow_y, rtol=1e-4)
    print(
        f"  slow.onnx one row: ReferenceEvaluator {timing['reference_ms']:.1f} ms, "
        f"numpy {timing['numpy_ms']:.1f} ms (y={float(slow_y[0, 0]):.6f})"
    )
    (slow_y3,) = run_ref(slow, {"x": np.array([[1.0], [2.0], [-0.5]], np.float32)})
    assert slow_y3.shape == (3, 1)
    write_json(
        FIX / "expected_fixtures.json",
        {
            "multi_io": {
                "inputs": {"x": [[1, 2, 3, 4]], "y": [[0.5, 0.5, 0.5, 0.5]]},
                "outputs": {"sum": f32_list(mi_sum), "x2": mi_x2.astype(int).tolist()},
            },
            "fixed_batch": {
                "inputs": {"x": [[1.0, 2.0, 3.0, 4.0]]},
                "outputs": {"y": f32_list(fb_y)},
            },
            "slow": {
                "inputs": {"x": [[1.0]]},
                "outputs": {"y": f32_list(slow_y)},
            },
        },
    )
    for p in (multi, fixed, slow):
        assert p.stat().st_size < 1_000_000, p

    print("[torch-model-archiver]")
    build_mar(tiny)

    print("[verify]")
    for p in sorted(list(EX_MODELS.glob("*.onnx")) + list(FIX_MODELS.glob("*.onnx"))
                    + list(EX_STORE.glob("*/*.onnx"))):
        m = onnx.load(str(p))
        onnx.checker.check_model(m, full_check=True)
        ReferenceEvaluator(m)
        print(f"  ok {rel(p)}: ir_version={m.ir_version} "
              f"opsets={[(o.domain or 'ai.onnx', o.version) for o in m.opset_import]} "
              f"{p.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
