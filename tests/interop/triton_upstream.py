"""NVIDIA's own Triton client examples and HTTP tests, run against oxserve.

The example programs (tritonclient's src/python/examples) and Triton's qa/L0_http/http_test.py
are upstream's files, unchanged (tests/triton-upstream/, BSD-3-Clause). What is ours is what their
upstream runners set up around them: a model store of ONNX stand-ins under the model names they
call (tests/fixtures/triton/, written by scripts/fixtures/triton_models.py), the server's address
(http_test.py says localhost:8000: a copy made at run time says the server's free port instead),
and `test_util.TestResultCollector`, which Triton's QA folder provides (a plain TestCase here).

Every example must exit 0, print no error, and print its PASS line where it has one. Every test of
http_test.py must pass except those listed in DIFFERENCES (which must fail: the list stays true)
and those in SKIPPED (not run, with the reason).

usage: triton_upstream.py OXSERVE_BINARY   (run with .venv-triton's interpreter)
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from peer_suites import ROOT, Server, settle

UPSTREAM = ROOT / "tests" / "triton-upstream"
MODELS = ROOT / "tests" / "fixtures" / "triton"

EXAMPLES = [
    "simple_http_infer_client",
    "simple_grpc_infer_client",
    "simple_http_aio_infer_client",
    "simple_grpc_aio_infer_client",
    "simple_http_async_infer_client",
    "simple_grpc_async_infer_client",
    "simple_http_string_infer_client",
    "simple_grpc_string_infer_client",
    "grpc_explicit_int_content_client",
    "grpc_explicit_int8_content_client",
    "grpc_explicit_byte_content_client",
    "simple_http_health_metadata",
    "simple_grpc_health_metadata",
    "simple_grpc_custom_args_client",
    "simple_grpc_keepalive_client",
]

# Examples not run: reuse_infer_objects_client (not vendored), simple_*_shm_client and *_cudashm_client use
# Triton's system and CUDA shared-memory extensions, which oxserve does not offer (it does not list
# them in GET /v2's extensions); the sequence clients need Triton's stateful sequence batcher;
# image_client and the model-control examples need models (densenet_onnx, Triton's full QA
# repository) that are not stand-ins here.

# http_test.py tests that fail on oxserve by design, with the reason.
DIFFERENCES = {
    "test_negative_dimensions": "Triton answers a negative dimension in a request's shape with 500 "
    "and its JSON library's message; oxserve answers 400 naming the negative dimension (the "
    "client's mistake, not the server's)",
    "test_load_oversized_file_parameter": "Triton's `file:` parameters upload model files with a "
    "load request (it answers 500 for a bad path); oxserve loads models from its model store only "
    "and answers 400 naming the parameter it does not take",
}
# http_test.py tests not run, with the reason.
SKIPPED = {
    "test_loading_large_invalid_model": "posts a 2.9 GB body built in the client's memory "
    "(about 11 GB of RAM for the test process); oxserve's answer to an oversized body, 413 before "
    "the body is read, is tested with bodies over max_request_size elsewhere",
}


def config(store):
    return (
        "inference_address=http://127.0.0.1:0\nmanagement_address=http://127.0.0.1:0\n"
        "metrics_address=http://127.0.0.1:0\ngrpc_inference_port=0\ngrpc_management_port=0\n"
        f"model_store={store}\nload_models=all\ndisable_token_authorization=true\n"
        # The health examples check that the server calls itself "triton".
        "enable_model_api=true\nserver_name=triton\ndrain_timeout=5\n"
    )


def run_examples(server, python):
    """Problems: examples that exit non-zero, report an error, or leave out their PASS line."""
    failures = {}
    for name in EXAMPLES:
        script = UPSTREAM / "examples" / f"{name}.py"
        api = "grpc_inference" if "grpc" in name else "inference"
        done = subprocess.run([python, script, "-u", server.address[api]], capture_output=True,
                              text=True, timeout=120)
        out = done.stdout + done.stderr
        wants_pass = "PASS" in script.read_text()
        if done.returncode != 0:
            failures[name] = [f"exit {done.returncode}\n{out}"]
        elif re.search(r"\berror\b|FAILED|failed", done.stdout):
            failures[name] = [f"reports a failure\n{out}"]
        elif wants_pass and "PASS" not in done.stdout:
            failures[name] = [f"no PASS line\n{out}"]
        else:
            failures[name] = []
    return settle("example", failures, {})


def run_http_test(server, work):
    """http_test.py with the server's address for localhost:8000; returns problems."""
    folder = work / "L0_http"
    folder.mkdir()
    text = (UPSTREAM / "L0_http" / "http_test.py").read_text()
    (folder / "http_test.py").write_text(text.replace("localhost:8000", server.address["inference"]))
    (folder / "test_util.py").write_text(
        "import unittest\n\n\nclass TestResultCollector(unittest.TestCase):\n    pass\n")
    sys.path.insert(0, str(folder))
    import http_test  # noqa: E402  (the adapted copy)

    failures = {}
    for test in unittest.defaultTestLoader.loadTestsFromTestCase(http_test.HttpTest):
        name = test.id().rsplit(".", 1)[1]
        if name in SKIPPED:
            print(f"L0_http {name}: not run ({SKIPPED[name]})")
            continue
        result = unittest.TestResult()
        test.run(result)
        failures[name] = [text for _, text in result.failures + result.errors]
    return settle("L0_http", failures, DIFFERENCES)


def main():
    oxserve = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = work / "model_store"
        shutil.copytree(MODELS, store)
        server = Server(oxserve, work / "server", config(store),
                        env=dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn")))
        try:
            problems = run_examples(server, sys.executable)
            problems += run_http_test(server, work)
        finally:
            server.stop()
        if problems:
            print("\n".join(["FAILED:"] + problems))
            print((work / "server" / "stderr.log").read_text()[-4000:])
            sys.exit(1)
    print("Triton's client examples and L0_http tests pass (but the listed differences)")


if __name__ == "__main__":
    main()
