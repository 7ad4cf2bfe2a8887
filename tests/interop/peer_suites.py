"""What the runners of the peers' own test suites share (torchserve_postman.py,
torchserve_pytest.py, triton_upstream.py, and torchserve_marsgen.py in TorchServe's place):
`oxserve serve` as a child process, the ONNX stand-ins of the PyTorch models the suites register,
and the reckoning of their results against the list of deliberate differences.

Imported from the runners' folder (Python puts a script's own folder first on its import path).
"""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VISION = ROOT / "tests" / "fixtures" / "handlers" / "vision"

# The APIs in the order oxserve's "Model server started." line names their addresses.
APIS = ["inference", "management", "metrics", "grpc_inference", "grpc_management"]

# TorchServe's archive names the suites register (its environment.json's mar_path_* values), as
# stand-ins of the same kind: the fixture image classifier, object detector and segmenter (ONNX,
# built-in handlers).
STAND_INS = {
    **{name: "classifier" for name in ["squeezenet1_1", "mnist", "densenet161", "resnet-152-batch",
                                      "resnet-18", "alexnet", "vgg16"]},
    "fastrcnn": "detector",
    "maskrcnn": "detector",
    "fcn_resnet_101": "segmenter",
    "deeplabv3_resnet_101_eager": "segmenter",
}
HANDLERS = {"classifier": "image_classifier", "detector": "object_detector",
            "segmenter": "image_segmenter"}


class Server:
    """`oxserve serve` with a config.properties, on the ports its first line reports."""

    def __init__(self, oxserve, work, config, env=None):
        work.mkdir(parents=True, exist_ok=True)
        (work / "config.properties").write_text(config)
        self.process = subprocess.Popen(
            [oxserve, "serve", "--ts-config", work / "config.properties", "--log-dir", work / "logs"],
            cwd=work, stdout=subprocess.PIPE, stderr=open(work / "stderr.log", "w"), text=True,
            env=env)
        line = self.process.stdout.readline()
        if not line.startswith("Model server started."):
            self.stop()
            raise SystemExit(f"oxserve did not start: {line}\n{(work / 'stderr.log').read_text()}")
        urls = [part.split(": ", 1)[1] for part in line.strip().split(", ")]
        # host:port of each API, and the port alone.
        self.address = {api: url.split("://", 1)[-1] for api, url in zip(APIS, urls)}
        self.port = {api: address.rsplit(":", 1)[1] for api, address in self.address.items()}

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def build_stand_ins(oxserve, store):
    """Packs every stand-in into `store` with `oxserve archive`, but those already there."""
    store.mkdir(parents=True, exist_ok=True)
    for name, kind in STAND_INS.items():
        if (store / f"{name}.mar").exists():
            continue
        fixture = VISION / kind
        config = ["--config-file", fixture / "model-config.yaml"] if kind == "classifier" else []
        subprocess.run(
            [oxserve, "archive", "--model-name", name, "--serialized-file", fixture / "model.onnx",
             "--handler", HANDLERS[kind], "--extra-files", fixture / "index_to_name.json", *config,
             "--export-path", store],
            check=True, stdout=subprocess.DEVNULL)


def settle(label, failures, differences, allowed=None):
    """Problems among a suite's results. `failures` maps each check that ran to its failure
    messages (empty: it passed); `differences` maps the checks that fail by design to the reason;
    `allowed`, optionally, maps some of those to the only message prefixes their failures may
    have. Passing checks and failures as listed are printed; a check that fails unlisted (or
    otherwise than allowed), and a listed one that did not fail, are problems."""
    allowed = allowed or {}
    problems = []
    for check, messages in sorted(failures.items()):
        reason, prefixes = differences.get(check), allowed.get(check)
        unexpected = [m for m in messages if prefixes and not any(m.startswith(p) for p in prefixes)]
        if not messages:
            print(f"{label} {check}: ok")
        elif unexpected:
            problems.append(f"{label} {check} fails otherwise than listed: " + "; ".join(unexpected))
        elif reason:
            print(f"{label} {check}: fails as expected ({reason})")
        else:
            problems.append(f"{label} {check}: " + "; ".join(messages))
    for check, reason in differences.items():
        if not failures.get(check):
            problems.append(f"{label} {check} is listed as a difference but did not fail: {reason}")
    return problems
