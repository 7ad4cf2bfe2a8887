"""TorchServe 0.12's own pytest suites (token authorization, model control), run against oxserve.

The suites and their resources are upstream's files, unchanged (tests/torchserve-upstream/pytest
and resources, Apache-2.0). They start and stop the server as upstream's CI does, through
`ts.launcher` and the `torchserve` command: here that command is the oxserve binary under the name
`torchserve` (its TorchServe command line), first on PATH. What is ours is set up around them as
upstream's runner would: a working folder laid out as their repository (test/pytest,
test/resources, test/postman, ts_scripts), `ts_scripts/marsgen.py` (tests/interop/
torchserve_marsgen.py: ONNX stand-ins packed offline instead of PyTorch weights downloaded), a
certificate of our own in place of upstream's RSA-1024 test key (which oxserve refuses as too
weak), and TMPDIR pointing into the working folder (the suites keep their model store under
tempfile.gettempdir()).

They use TorchServe's fixed ports (8080, 8081, 8082, 7070, 7071), which must be free.

Tests that assert one of oxserve's documented differences are listed in DIFFERENCES with the
reason; any other failing test fails the run, and so does a listed test that passes.

usage: torchserve_pytest.py OXSERVE_BINARY   (run with .venv-torchserve-tests' interpreter)
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from peer_suites import ROOT, settle

UPSTREAM = ROOT / "tests" / "torchserve-upstream"
SUITES = ["test_model_control_mode.py", "test_token_authorization.py"]
PORTS = [8080, 8081, 8082, 7070, 7071]

WRONG_KEY = (
    "a missing, wrong or expired key is 401 on oxserve (and a key of the other API 403), as HTTP "
    "defines them; TorchServe answers 400"
)
WORKFLOWS = "TorchServe's workflow API (/workflows): oxserve does not serve workflows (404)"
DIFFERENCES = {
    "test_token_authorization.py::test_managament_api_with_incorrect_token": WRONG_KEY,
    "test_token_authorization.py::test_inference_api_with_incorrect_token": WRONG_KEY,
    "test_token_authorization.py::test_token_inference_api": WRONG_KEY
    + " (the old inference key after a new one was made)",
    "test_token_authorization.py::test_token_expiration_time": WRONG_KEY + " (an expired key)",
    "test_token_authorization.py::test_priority_env_cmd": WRONG_KEY + " (no key)",
    "test_token_authorization.py::test_managament_api_with_incorrect_token_https": WRONG_KEY,
    "test_token_authorization.py::test_workflow": WORKFLOWS,
    "test_token_authorization.py::test_workflow_fail": WORKFLOWS,
    "test_token_authorization.py::test_workflow_inference": WORKFLOWS,
    "test_token_authorization.py::test_workflow_inference_fail": WORKFLOWS,
}


def layout(work):
    """The folders the suites expect around them, as in TorchServe's repository."""
    test = work / "test"
    shutil.copytree(UPSTREAM / "pytest", test / "pytest")
    shutil.copytree(UPSTREAM / "resources", test / "resources")
    tls = ROOT / "tests" / "fixtures" / "tls"
    shutil.copy(tls / "localhost-key.pem", test / "resources" / "key.pem")
    shutil.copy(tls / "localhost-cert.pem", test / "resources" / "certs.pem")
    (test / "postman").mkdir()
    shutil.copy(UPSTREAM / "postman" / "environment.json", test / "postman")
    (work / "ts_scripts").mkdir()
    (work / "ts_scripts" / "__init__.py").write_text("")
    shutil.copy(Path(__file__).with_name("torchserve_marsgen.py"), work / "ts_scripts" / "marsgen.py")
    (work / "bin").mkdir()
    (work / "tmp").mkdir()
    return test / "pytest"


def busy_ports():
    busy = []
    for port in PORTS:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    return busy


def outcomes(report):
    """{"file.py::test": [failure, ...]} from pytest's JUnit XML report."""
    results = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname').rsplit('.', 1)[-1]}.py::{case.get('name')}"
        problems = [(e.get("message") or e.tag)[:300] for e in case
                    if e.tag in ("failure", "error")]
        results[name] = problems
    return results


def main():
    oxserve = sys.argv[1]
    busy = busy_ports()
    if busy:
        sys.exit(f"TorchServe's suites need ports {PORTS} free; in use: {busy}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        suites = layout(work)
        os.symlink(oxserve, work / "bin" / "torchserve")
        env = dict(os.environ, PATH=f"{work / 'bin'}:{os.environ['PATH']}", TMPDIR=str(work / "tmp"),
                   OXSERVE_BINARY=oxserve, OXSERVE_REPO=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
        report = work / "report.xml"
        try:
            subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                            f"--junitxml={report}", *SUITES], cwd=suites, env=env, check=False,
                           timeout=900)
        finally:
            subprocess.run(["torchserve", "--stop", "--foreground"], env=env, check=False,
                           stdout=subprocess.DEVNULL)
        results = outcomes(report)
    problems = settle("pytest", results, DIFFERENCES)
    if problems:
        print("\n".join(["FAILED:"] + problems))
        sys.exit(1)
    print(f"TorchServe's pytest suites pass (but the listed differences): {len(results)} tests")


if __name__ == "__main__":
    main()
