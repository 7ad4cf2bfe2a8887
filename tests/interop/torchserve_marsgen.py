"""Stands in for TorchServe's `ts_scripts/marsgen.py` when its pytest suites run against oxserve.

Upstream's `gen_mar` downloads PyTorch weights and packs the archives its tests register; this one
packs, offline, the ONNX stand-ins of tests/interop/peer_suites.py under the same archive names
with `oxserve archive`. tests/interop/torchserve_pytest.py copies it to `ts_scripts/marsgen.py`
beside the suites and says where the repository and the binary are (OXSERVE_REPO,
OXSERVE_BINARY).
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(os.environ["OXSERVE_REPO"]) / "tests" / "interop"))

from peer_suites import build_stand_ins  # noqa: E402


def gen_mar(model_store=None):
    build_stand_ins(os.environ["OXSERVE_BINARY"], Path(model_store))
