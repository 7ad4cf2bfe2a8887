"""TorchServe 0.12's own Postman collections (management, HTTPS), run by newman against oxserve.

The collections, their data and environment are upstream's files, unchanged
(tests/torchserve-upstream/, Apache-2.0). Only what the upstream runner (ts_scripts/api_utils.py)
sets up around them is ours: the server's config.properties (ports chosen free, the certificate:
TorchServe's test key is RSA-1024, which oxserve refuses as too weak), and the model store, whose
archives are ONNX stand-ins under the names the collections register (upstream builds them from
PyTorch weights downloaded at test time). Rows that assert one of oxserve's documented differences
are listed in DIFFERENCES with the reason; any other failing row fails the run, and so does a listed
row that passes (the list must stay true).

usage: torchserve_postman.py OXSERVE_BINARY NEWMAN_BINARY
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from oxserve_server import Server

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM = ROOT / "tests" / "torchserve-upstream" / "postman"
CLASSIFIER = ROOT / "tests" / "fixtures" / "handlers" / "vision" / "classifier"

# The archives the collections name (environment.json's mar_path_* values), as stand-ins: the
# fixture image classifier (ONNX, built-in image_classifier handler) under each name.
STAND_INS = ["squeezenet1_1", "mnist", "densenet161", "resnet-152-batch", "resnet-18"]

# (suite, data row) -> why the row fails on oxserve by design.
CHECKED_AT_REGISTER = (
    "oxserve checks the handler and startup_timeout when a model is registered and refuses a "
    "register that cannot work (400, with the reason); TorchServe accepts it when no worker is "
    "asked for (200) and fails when one starts (500)"
)
NOT_REGISTERED = "knock-on: the model of the row before was refused at register (see there), so 404"
DIFFERENCES = {
    ("management", 4): "registers from https://torchserve.pytorch.org without allowed_urls: oxserve "
    "refuses URLs unless the operator allows them (400), TorchServe fails on the existing file (500)",
    ("management", 8): CHECKED_AT_REGISTER + " (handler=invalidHandler)",
    ("management", 9): NOT_REGISTERED,
    ("management", 10): CHECKED_AT_REGISTER + " (handler=invalidHandler)",
    ("management", 11): NOT_REGISTERED + " where TorchServe's scale-up fails with 500",
    ("management", 12): NOT_REGISTERED,
    ("management", 29): "handler=serve/ts/torch_handler/image_classifier.py:handle names a Python "
    "handler, and this run has no Python worker runtime: oxserve refuses the register saying so (400); "
    "TorchServe accepts it without workers (200)",
    ("management", 30): NOT_REGISTERED,
    ("management", 31): CHECKED_AT_REGISTER + " (startup_timeout=0 with 3 workers: 400, not 500)",
    ("management", 32): CHECKED_AT_REGISTER + " (startup_timeout=0)",
    ("management", 33): NOT_REGISTERED,
    ("management", 69): "min_worker=-1: a clear 400 where TorchServe fails with 500",
}


def build_store(oxserve, store):
    store.mkdir(parents=True)
    for name in STAND_INS:
        subprocess.run(
            [oxserve, "archive", "--model-name", name, "--serialized-file", CLASSIFIER / "model.onnx",
             "--handler", "image_classifier", "--extra-files", CLASSIFIER / "index_to_name.json",
             "--config-file", CLASSIFIER / "model-config.yaml", "--export-path", store],
            check=True, stdout=subprocess.DEVNULL)


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


def settle(suite, failures):
    """Problems: rows failing not for a listed reason, and listed rows that passed."""
    problems = []
    for row, messages in sorted(failures.items()):
        reason = DIFFERENCES.get((suite, row))
        if reason:
            print(f"{suite} row {row}: fails as expected ({reason})")
        else:
            problems.append(f"{suite} row {row}: " + "; ".join(messages))
    for (listed_suite, row), reason in DIFFERENCES.items():
        if listed_suite == suite and row not in failures:
            problems.append(f"{suite} row {row} passes but is listed as a difference: {reason}")
    return problems


def main():
    oxserve, newman_binary = sys.argv[1], sys.argv[2]
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = work / "model_store"
        build_store(oxserve, store)
        (work / "test").mkdir()
        # The HTTPS collection uploads ../examples/image_classifier/kitten.jpg (from its working dir):
        # a photo of the project's own stands in.
        photo = work / "examples" / "image_classifier" / "kitten.jpg"
        photo.parent.mkdir(parents=True)
        shutil.copy(CLASSIFIER / "photos" / "chelsea.jpg", photo)
        plain = ("inference_address=http://127.0.0.1:0\nmanagement_address=http://127.0.0.1:0\n"
                 "metrics_address=http://127.0.0.1:0\n")
        common = (f"model_store={store}\ndisable_token_authorization=true\nenable_model_api=true\n"
                  "grpc_inference_port=0\ngrpc_management_port=0\ndrain_timeout=5\n")

        server = Server(oxserve, work / "management", plain + common)
        try:
            failures = newman(newman_binary, work, "management_api_test_collection",
                              {"hostname": "127.0.0.1", "mgmt-port": server.port["management"],
                               "pred-port": server.port["inference"]},
                              data="management_data.json")
        finally:
            server.stop()
        problems += settle("management", failures)

        tls = ROOT / "tests" / "fixtures" / "tls"
        https = ("inference_address=https://127.0.0.1:0\nmanagement_address=https://127.0.0.1:0\n"
                 "metrics_address=https://127.0.0.1:0\n"
                 f"certificate_file={tls / 'localhost-cert.pem'}\n"
                 f"private_key_file={tls / 'localhost-key.pem'}\n")
        server = Server(oxserve, work / "https", https + common)
        try:
            failures = newman(newman_binary, work, "https_test_collection",
                              {"hostname": "127.0.0.1", "sec-pred-port": server.port["inference"],
                               "sec-mgmt-port": server.port["management"],
                               "sec-metric-port": server.port["metrics"]},
                              insecure=True)
        finally:
            server.stop()
        problems += settle("https", failures)
    if problems:
        print("\n".join(["FAILED:"] + problems))
        sys.exit(1)
    print("TorchServe's management and HTTPS collections pass (but the listed differences)")


if __name__ == "__main__":
    main()
