"""Stands in for TorchServe's `ts_scripts/marsgen.py` when its pytest suites run against oxserve.

Upstream's `gen_mar` downloads PyTorch weights and packs the archives its tests register; this one
packs, offline, the project's ONNX image classifier (tests/fixtures/handlers/vision/classifier,
built-in `image_classifier` handler) under each archive name the suites use, with `oxserve
archive`. tests/interop/torchserve_pytest.py copies it to `ts_scripts/marsgen.py` beside the
suites and says where the binary is (OXSERVE_BINARY).
"""

import os
import subprocess
from pathlib import Path

ROOT = Path(os.environ["OXSERVE_REPO"])
CLASSIFIER = ROOT / "tests" / "fixtures" / "handlers" / "vision" / "classifier"
NAMES = ["mnist", "resnet-18", "squeezenet1_1", "densenet161", "resnet-152-batch"]


def gen_mar(model_store=None):
    store = Path(model_store)
    store.mkdir(parents=True, exist_ok=True)
    for name in NAMES:
        if (store / f"{name}.mar").exists():
            continue
        subprocess.run(
            [os.environ["OXSERVE_BINARY"], "archive", "--model-name", name,
             "--serialized-file", CLASSIFIER / "model.onnx", "--handler", "image_classifier",
             "--extra-files", CLASSIFIER / "index_to_name.json",
             "--config-file", CLASSIFIER / "model-config.yaml", "--export-path", store],
            check=True, stdout=subprocess.DEVNULL)
