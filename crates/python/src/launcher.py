"""Starts TorchServe's stock Python worker (`ts.model_service_worker`) for oxserve.

The worker imports torch in one place only, `ts.protocol.otf_message_handler`, to ask whether an
answer is a tensor. Where torch is not installed, that module is imported with a stand-in `torch`
whose `Tensor` nothing is an instance of, and the stand-in is removed again at once, so a handler
that imports torch still fails as it should while torch-free handlers run unchanged. Where torch is
installed this does nothing. Arguments are the worker's own.
"""

import importlib
import runpy
import sys
import types

try:
    import torch  # noqa: F401
except ImportError:
    stand_in = types.ModuleType("torch")
    stand_in.Tensor = type("Tensor", (), {})
    sys.modules["torch"] = stand_in
    try:
        importlib.import_module("ts.protocol.otf_message_handler")
    finally:
        del sys.modules["torch"]

runpy.run_module("ts.model_service_worker", run_name="__main__", alter_sys=True)
