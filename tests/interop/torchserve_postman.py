"""TorchServe 0.12's own Postman collections (management, inference, HTTPS), run by newman against
oxserve.

The collections, their data and environment are upstream's files, unchanged
(tests/torchserve-upstream/, Apache-2.0). Only what the upstream runner (ts_scripts/api_utils.py)
sets up around them is ours: the server's config.properties (ports chosen free, the certificate:
TorchServe's test key is RSA-1024, which oxserve refuses as too weak), and the model store, whose
archives are ONNX stand-ins of the same kind (image classifier, object detector, segmenter) under
the names the collections register (upstream builds them from PyTorch weights downloaded at test
time), and the photos and text the inference collection uploads. The inference collection reads
metrics from http://localhost:8082 itself, so that run's metrics listener takes port 8082. Rows that assert one of oxserve's documented differences
are listed in DIFFERENCES with the reason; any other failing row fails the run, and so does a listed
row that passes (the list must stay true).

usage: torchserve_postman.py OXSERVE_BINARY NEWMAN_BINARY
"""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from peer_suites import ROOT, Server, build_stand_ins, settle

UPSTREAM = ROOT / "tests" / "torchserve-upstream" / "postman"
CLASSIFIER = ROOT / "tests" / "fixtures" / "handlers" / "vision" / "classifier"
# The metrics request of the inference collection says http://localhost:8082 itself.
METRICS_PORT = 8082

# The management collection: data row -> why the row fails on oxserve by design.
CHECKED_AT_REGISTER = (
    "oxserve checks the handler and startup_timeout when a model is registered and refuses a "
    "register that cannot work (400, with the reason); TorchServe accepts it when no worker is "
    "asked for (200) and fails when one starts (500)"
)
NOT_REGISTERED = "knock-on: the model of the row before was refused at register (see there), so 404"
MANAGEMENT = {
    4: "registers from https://torchserve.pytorch.org without allowed_urls: oxserve "
    "refuses URLs unless the operator allows them (400), TorchServe fails on the existing file (500)",
    8: CHECKED_AT_REGISTER + " (handler=invalidHandler)",
    9: NOT_REGISTERED,
    10: CHECKED_AT_REGISTER + " (handler=invalidHandler)",
    11: NOT_REGISTERED + " where TorchServe's scale-up fails with 500",
    12: NOT_REGISTERED,
    29: "handler=serve/ts/torch_handler/image_classifier.py:handle names a Python "
    "handler, and this run has no Python worker runtime: oxserve refuses the register saying so (400); "
    "TorchServe accepts it without workers (200)",
    30: NOT_REGISTERED,
    31: CHECKED_AT_REGISTER + " (startup_timeout=0 with 3 workers: 400, not 500)",
    32: CHECKED_AT_REGISTER + " (startup_timeout=0)",
    33: NOT_REGISTERED,
    69: "min_worker=-1: a clear 400 where TorchServe fails with 500",
}

# The inference collection's rows. Those that register from torchserve.pytorch.org (or its S3
# bucket) are refused without allowed_urls, as in the management collection (then inference and
# unregister find no model: 404); those on stand-ins get the stand-in's labels and probabilities,
# not the PyTorch weights' ones the row expects, so only the answer check fails there.
FROM_URL = ("registers from https://torchserve.pytorch.org: oxserve refuses URLs unless the operator "
            "allows them (400), and the row's inference and unregister then find no model (404)")
PROBABILITIES = ("the row checks the top-5 probabilities of a PyTorch model's downloaded weights; "
                 "its ONNX stand-in answers 200 with its own labels")
URL_ROWS = [2, 5, 7, 9, 10, 11, 15, 17, 19, 20, 21, 22]
PROBABILITY_ROWS = [1, 3, 4, 6, 8, 18]
# Each collection: data row -> why the row fails on oxserve by design.
DIFFERENCES = {
    "management": MANAGEMENT,
    "https": {},
    "inference": {**{row: FROM_URL for row in URL_ROWS},
                  **{row: PROBABILITIES for row in PROBABILITY_ROWS}},
}
# Inference rows: the only failures allowed (message prefixes); anything else fails the run.
ONLY = {
    **{row: ["Model Zoo - Register Model: expected 400 ",
             "Model Zoo - Inference Model: expected 404 ",
             "Model Zoo - Inference Model: expected false to be true",
             "Model Zoo - Inference Model: expected response body to equal",
             "Model Zoo - Unregister model: expected 404 "] for row in URL_ROWS},
    **{row: ["Model Zoo - Inference Model: expected false to be true"]
       for row in PROBABILITY_ROWS},
}


def example_files(work):
    """The files the inference collection uploads (paths relative to its working folder), as
    photos and text of the project's own."""
    photos = CLASSIFIER / "photos"
    files = {
        "examples/image_classifier/kitten.jpg": photos / "chelsea.jpg",
        "examples/object_detector/persons.jpg": photos / "astronaut.jpg",
        "examples/image_segmenter/persons.jpg": photos / "astronaut.jpg",
        "examples/image_classifier/mnist/test_data/0.png":
            ROOT / "tests" / "torchserve-upstream" / "pytest" / "test_data" / "0.png",
    }
    for path, source in files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, work / path)
    for path in ["examples/Huggingface_Transformers/sample_text.txt",
                 "examples/text_classification/sample_text.txt"]:
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text("Bloomberg has decided to publish a new report on the economy.\n")


def newman(binary, work, collection, env_vars, data=None, insecure=False):
    """Runs a collection; returns {row: [failure, ...]} (row 1 without a data file)."""
    report = work / f"{collection}.report.json"
    command = [binary, "run", UPSTREAM / f"{collection}.json", "-e", UPSTREAM / "environment.json",
               "--working-dir", work / "test", "-r", "cli,json", "--reporter-json-export", report,
               "--timeout-request", "180000"]
    if data:
        command += ["-d", UPSTREAM / data]
    if insecure:
        command.append("--insecure")
    for key, value in env_vars.items():
        command += ["--env-var", f"{key}={value}"]
    subprocess.run(command, cwd=work, check=False)
    executions = json.loads(report.read_text())["run"]["executions"]
    failures = {}
    for e in executions:
        row = e.get("cursor", {}).get("iteration", 0) + 1
        name = e.get("item", {}).get("name", "?")
        problems = [a["error"]["message"] for a in e.get("assertions", []) if a.get("error")]
        if e.get("requestError"):
            problems.append(f"request error: {e['requestError'].get('message')}")
        for p in problems:
            failures.setdefault(row, []).append(f"{name}: {p}")
    return failures


def on_server(oxserve, newman_binary, work, config, collection, ports, **newman_args):
    """Runs a collection against a server of its own, started with `config`; `ports` maps the
    collection's port variables to the server's listeners."""
    server = Server(oxserve, work / collection, config)
    try:
        env_vars = {"hostname": "127.0.0.1", **{var: server.port[l] for var, l in ports.items()}}
        return newman(newman_binary, work, collection, env_vars, **newman_args)
    finally:
        server.stop()


def main():
    oxserve, newman_binary = sys.argv[1], sys.argv[2]
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = work / "model_store"
        build_stand_ins(oxserve, store)
        (work / "test").mkdir()
        # The collections upload ../examples/... (from their working dir, work/test).
        example_files(work)
        plain = ("inference_address=http://127.0.0.1:0\nmanagement_address=http://127.0.0.1:0\n"
                 "metrics_address=http://127.0.0.1:0\n")
        common = (f"model_store={store}\ndisable_token_authorization=true\nenable_model_api=true\n"
                  "grpc_inference_port=0\ngrpc_management_port=0\ndrain_timeout=5\n")

        http_ports = {"mgmt-port": "management", "pred-port": "inference"}
        failures = on_server(oxserve, newman_binary, work, plain + common,
                             "management_api_test_collection", http_ports,
                             data="management_data.json")
        problems += settle("management row", failures, DIFFERENCES["management"])

        inference = plain.replace("metrics_address=http://127.0.0.1:0",
                                  f"metrics_address=http://127.0.0.1:{METRICS_PORT}")
        failures = on_server(oxserve, newman_binary, work, inference + common,
                             "inference_api_test_collection", http_ports,
                             data="inference_data.json")
        problems += settle("inference row", failures, DIFFERENCES["inference"], ONLY)

        tls = ROOT / "tests" / "fixtures" / "tls"
        https = ("inference_address=https://127.0.0.1:0\nmanagement_address=https://127.0.0.1:0\n"
                 "metrics_address=https://127.0.0.1:0\n"
                 f"certificate_file={tls / 'localhost-cert.pem'}\n"
                 f"private_key_file={tls / 'localhost-key.pem'}\n")
        failures = on_server(oxserve, newman_binary, work, https + common, "https_test_collection",
                             {"sec-pred-port": "inference", "sec-mgmt-port": "management",
                              "sec-metric-port": "metrics"},
                             insecure=True)
        problems += settle("https row", failures, DIFFERENCES["https"])
    if problems:
        print("\n".join(["FAILED:"] + problems))
        sys.exit(1)
    print("TorchServe's management, inference and HTTPS collections pass (but the listed "
          "differences)")


if __name__ == "__main__":
    main()
