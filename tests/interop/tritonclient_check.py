"""Drives a running oxserve with NVIDIA's real `tritonclient` (HTTP and gRPC, JSON and binary).

Run by crates/server/tests/interop_tritonclient.rs with the interpreter of .venv-triton
(scripts/install-tritonclient.sh):

    python tests/interop/tritonclient_check.py --http 127.0.0.1:PORT --grpc 127.0.0.1:PORT \
        --expected examples/inputs/expected.json

For each example model it checks readiness and metadata over both protocols, then runs the same
input four ways (HTTP JSON, HTTP binary, gRPC unary, gRPC stream) and requires every output to be
identical, bit for bit, to the HTTP JSON path's, and close to the model's expected answer. Any
failure exits non-zero with the reason; success prints one line per model.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient


def fail(message: str) -> None:
    print(f"tritonclient interop FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition: bool, message: str) -> None:
    if not condition:
        fail(message)


def model_inputs(expected: dict) -> dict[str, np.ndarray]:
    """Model name -> one example row, from examples/inputs/expected.json."""
    return {
        "tiny": np.array([expected["tiny"]["input"]], dtype=np.float32),
        "digits": np.array([expected["digits"][0]["input"]], dtype=np.float32),
    }


def shape_of(meta_shape, row: np.ndarray) -> list[int]:
    check(len(meta_shape) == row.ndim, f"metadata shape {meta_shape} vs input {row.shape}")
    return [int(d) if int(d) >= 0 else int(s) for d, s in zip(meta_shape, row.shape)]


def http_infer(client, model: str, meta: dict, row: np.ndarray, binary: bool) -> dict:
    spec = meta["inputs"][0]
    inp = httpclient.InferInput(spec["name"], shape_of(spec["shape"], row), spec["datatype"])
    inp.set_data_from_numpy(row, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput(o["name"], binary_data=binary) for o in meta["outputs"]]
    result = client.infer(model, [inp], outputs=outputs, request_id=f"{model}-http")
    check(result.get_response()["id"] == f"{model}-http", "HTTP answer lost the request id")
    return {o["name"]: result.as_numpy(o["name"]) for o in meta["outputs"]}


def grpc_inputs(meta, row: np.ndarray):
    spec = meta.inputs[0]
    inp = grpcclient.InferInput(spec.name, shape_of(list(spec.shape), row), spec.datatype)
    inp.set_data_from_numpy(row)
    return [inp], [grpcclient.InferRequestedOutput(o.name) for o in meta.outputs]


def grpc_infer(client, model: str, meta, row: np.ndarray) -> dict:
    inputs, outputs = grpc_inputs(meta, row)
    result = client.infer(model, inputs, outputs=outputs, request_id=f"{model}-grpc")
    check(result.get_response().id == f"{model}-grpc", "gRPC answer lost the request id")
    return {o.name: result.as_numpy(o.name) for o in meta.outputs}


def grpc_stream_infer(client, model: str, meta, row: np.ndarray) -> dict:
    answers: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        inputs, outputs = grpc_inputs(meta, row)
        client.async_stream_infer(model, inputs, outputs=outputs, request_id=f"{model}-stream")
        result, error = answers.get(timeout=30)
    finally:
        client.stop_stream()
    check(error is None, f"stream inference on {model} failed: {error}")
    return {o.name: result.as_numpy(o.name) for o in meta.outputs}


def same(reference: dict, other: dict, what: str) -> None:
    check(reference.keys() == other.keys(), f"{what}: outputs {sorted(other)} vs {sorted(reference)}")
    for name, ref in reference.items():
        got = other[name]
        check(got.dtype == ref.dtype, f"{what}: output {name} is {got.dtype}, JSON path {ref.dtype}")
        check(got.shape == ref.shape, f"{what}: output {name} has shape {got.shape}, JSON path {ref.shape}")
        check(np.array_equal(got, ref), f"{what}: output {name} differs from the JSON path: {got} vs {ref}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", required=True)
    parser.add_argument("--grpc", required=True)
    parser.add_argument("--expected", required=True)
    args = parser.parse_args()
    with open(args.expected) as f:
        expected = json.load(f)

    http = httpclient.InferenceServerClient(url=args.http)
    grpc = grpcclient.InferenceServerClient(url=args.grpc)
    check(http.is_server_live() and http.is_server_ready(), "HTTP: server not live and ready")
    check(grpc.is_server_live() and grpc.is_server_ready(), "gRPC: server not live and ready")
    check("binary_tensor_data" in http.get_server_metadata()["extensions"], "HTTP: no binary_tensor_data extension")
    check("binary_tensor_data" in grpc.get_server_metadata().extensions, "gRPC: no binary_tensor_data extension")

    for model, row in model_inputs(expected).items():
        check(http.is_model_ready(model) and grpc.is_model_ready(model), f"{model} is not ready")
        meta = http.get_model_metadata(model)
        gmeta = grpc.get_model_metadata(model)
        check(meta["name"] == gmeta.name == model, f"{model}: metadata names differ")
        check([i["name"] for i in meta["inputs"]] == [i.name for i in gmeta.inputs], f"{model}: input names differ")
        check([o["name"] for o in meta["outputs"]] == [o.name for o in gmeta.outputs], f"{model}: output names differ")

        reference = http_infer(http, model, meta, row, binary=False)
        same(reference, http_infer(http, model, meta, row, binary=True), f"{model} HTTP binary")
        same(reference, grpc_infer(grpc, model, gmeta, row), f"{model} gRPC")
        same(reference, grpc_stream_infer(grpc, model, gmeta, row), f"{model} gRPC stream")

        if model == "tiny":
            want = np.array(expected["tiny"]["output"], dtype=np.float32).reshape(-1)
            got = reference[meta["outputs"][0]["name"]].reshape(-1)
            check(np.allclose(got, want, atol=1e-4), f"tiny: {got} is not the expected {want}")
        print(f"{model}: HTTP JSON, HTTP binary, gRPC and gRPC stream agree "
              f"({', '.join(f'{k} {v.dtype}{list(v.shape)}' for k, v in reference.items())})")

    try:
        http.get_model_metadata("no-such-model")
        fail("HTTP metadata of an unknown model did not fail")
    except Exception as e:  # tritonclient raises InferenceServerException
        check("not found" in str(e), f"HTTP unknown model: unexpected error {e}")
    try:
        grpc.get_model_metadata("no-such-model")
        fail("gRPC metadata of an unknown model did not fail")
    except Exception as e:
        check("NOT_FOUND" in str(e) or "not found" in str(e), f"gRPC unknown model: unexpected error {e}")
    http.close()
    grpc.close()
    print("tritonclient interop: ok")


if __name__ == "__main__":
    main()
