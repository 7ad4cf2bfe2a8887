"""What a Kubernetes cluster would do with deploy/kubernetes, reproduced on this machine.

    cluster_check.py OXSERVE_BINARY

1. The Deployment (deploy/kubernetes/base): oxserve starts with the container's own command, args,
   env and working folder, each volume mount a folder here (config.properties from the ConfigMap,
   the keys from the Secret, the model store, emptyDirs), listeners moved to free loopback ports
   (the only change). The startup, liveness and readiness probes are sent as the kubelet sends
   them; the metric the autoscalers read (named in the HPA patch and the KEDA query) must rise
   under load and fall after; SIGTERM, as the kubelet sends it after preStop, must drain: readiness
   turns 503, the request in flight is answered, and the process exits 0 within the grace period.
2. The KServe runtimes (deploy/kubernetes/kserve): oxserve starts with a ClusterServingRuntime's
   args and env (templated as KServe templates them) over /mnt/models laid out as KServe's storage
   initializer lays it out, and KServe's own Python SDK calls it: REST v1, REST v2 and gRPC v2.

Exits non-zero with the reason on the first broken promise.
"""

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import yaml
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
OXSERVE = str(Path(sys.argv[1]).resolve())
EXPECTED = json.loads((ROOT / "examples" / "inputs" / "expected.json").read_text())


def check(condition, message):
    if not condition:
        sys.exit(f"FAILED: {message}")


def documents(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


# The pod's ports and the free loopback ports standing in for them, one for one, so two listeners
# a manifest puts on the same port clash here as they would in the pod.
PORTS = {}


def free(port):
    port = int(port)
    if port not in PORTS:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            PORTS[port] = s.getsockname()[1]
    return str(PORTS[port])


def loopback(text):
    """The pod's listeners (its own network) become loopback ones, each port its own free one."""
    text = re.sub(r"(https?://)(?:0\.0\.0\.0|127\.0\.0\.1):(\d+)", lambda m: f"{m[1]}127.0.0.1:{free(m[2])}", text)
    text = re.sub(r"(grpc_(?:inference|management)_port\s*=\s*)(\d+)", lambda m: m[1] + free(m[2]), text)
    text = re.sub(r"(--grpc-(?:inference|management)-port=)(\d+)", lambda m: m[1] + free(m[2]), text)
    text = re.sub(r"(grpc_(?:inference|management)_address\s*=\s*)0\.0\.0\.0", r"\g<1>127.0.0.1", text)
    return re.sub(r"(--grpc-(?:inference|management)-address=)0\.0\.0\.0", r"\g<1>127.0.0.1", text)


# Every listener a runtime's args must place: one left to its default could clash with another.
LISTENER_FLAGS = ["--inference-address=", "--management-address=", "--metrics-address=",
                  "--grpc-inference-port=", "--grpc-management-port="]


def http(method, url, body=None, token=None, timeout=60):
    request = urllib.request.Request(url, data=body, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Pod:
    """One container started as the kubelet would start it, its mounts mapped to folders here."""

    def __init__(self, container, mounts, root, env=None):
        self.mounts = dict(sorted(mounts.items(), key=lambda m: -len(m[0])))
        self.root = root

        def local(value):
            for inside, outside in self.mounts.items():
                if value == inside or value.startswith(inside + "/"):
                    return str(outside) + value[len(inside):]
                if value.startswith("--") and "=" + inside in value:
                    return value.replace("=" + inside, "=" + str(outside), 1)
            return value

        command = container.get("command", ["oxserve"])
        check(command[0] == "oxserve", f"the container runs {command}, not oxserve")
        self.argv = [OXSERVE] + [loopback(local(a)) for a in command[1:] + container.get("args", [])]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TS_")}
        self.env.update({e["name"]: local(e["value"]) for e in container.get("env", [])})
        self.env.update(env or {})
        self.env.setdefault("RUST_LOG", "warn")
        self.cwd = local(container.get("workingDir", str(root)))
        Path(self.cwd).mkdir(parents=True, exist_ok=True)
        self.log = open(root / "oxserve.log", "wb")
        self.process = subprocess.Popen(
            self.argv, cwd=self.cwd, env=self.env, stdout=subprocess.PIPE, stderr=self.log
        )
        line = self.process.stdout.readline().decode()
        if not line.startswith("Model server started."):
            self.process.kill()
            sys.exit(f"FAILED: oxserve did not start: {line!r}\n{(root / 'oxserve.log').read_text()}")
        urls = re.findall(r"https?://[^, ]+", line)
        self.api = dict(zip(["inference", "management", "metrics", "grpc", "grpc-management"], urls))

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def metric(pod, name):
    """The sum of a family's samples on the metrics API."""
    status, body = http("GET", pod.api["metrics"] + "/metrics")
    check(status == 200, f"/metrics answered {status}")
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in body.decode().splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    ]
    check(values, f"/metrics has no {name}")
    return sum(values)


def autoscaler_metric():
    """The metric both autoscaling overlays read; they must agree."""
    hpa = documents(K8S / "overlays" / "prometheus-adapter" / "hpa-in-flight.yaml")[0]
    pods = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    keda = documents(K8S / "overlays" / "keda" / "scaledobject.yaml")[0]
    queries = [t["metadata"]["query"] for t in keda["spec"]["triggers"] if t["type"] == "prometheus"]
    check(len(pods) == 1 and len(queries) == 1, "one custom metric in each overlay")
    check(pods[0] in queries[0], f"KEDA queries {queries[0]!r}, the HPA scales on {pods[0]}")
    return pods[0]


def slow_body(rows):
    return json.dumps({"inputs": [{"name": "x", "shape": [rows, 1], "datatype": "FP32", "data": [1.0] * rows}]}).encode()


def deployment(work):
    deploy = documents(K8S / "base" / "deployment.yaml")[0]
    spec = deploy["spec"]["template"]["spec"]
    container = spec["containers"][0]
    volumes = {v["name"]: v for v in spec["volumes"]}
    config = (K8S / "base" / "config.properties").read_text()
    keys = {"inference": {"key": "i" * 40}, "management": {"key": "m" * 40}, "API": {"key": "a" * 40}}
    mounts = {}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        here = work / "pod" / mount["name"]
        if "configMap" in volume:
            here.mkdir(parents=True)
            here = here / mount["subPath"]
            here.write_text(loopback(config))
        elif "secret" in volume:
            here.mkdir(parents=True)
            (here / "key_file.json").write_text(json.dumps(keys))
        elif "persistentVolumeClaim" in volume:
            shutil.copytree(ROOT / "examples" / "model-store", here)
            shutil.copy(ROOT / "tests" / "fixtures" / "models" / "slow.onnx", here)
        else:
            here.mkdir(parents=True)
        mounts[mount["mountPath"]] = here
    # config.properties names the container's paths: they are the mounts' too.
    inside = "|".join(re.escape(m) for m in sorted(mounts, key=len, reverse=True))
    text = mounts["/etc/oxserve/config.properties"].read_text()
    text = re.sub(rf"(?<==)({inside})(?=/|$)", lambda m: str(mounts[m.group(1)]), text, flags=re.M)
    mounts["/etc/oxserve/config.properties"].write_text(text)
    pod = Pod(container, mounts, work)
    try:
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        by_port = {}
        for key, api in [("inference_address", "inference"), ("management_address", "management"), ("metrics_address", "metrics")]:
            port = int(re.search(rf"^{key}=.*:(\d+)$", config, re.M).group(1))
            by_port[port] = api

        def probe(name):
            """The status the kubelet's httpGet gets; a refused connection fails a probe as 503 does."""
            p = container[name]["httpGet"]
            url = pod.api[by_port[ports[p["port"]]]] + p["path"]
            try:
                return http("GET", url, timeout=container[name].get("timeoutSeconds", 1))[0]
            except (urllib.error.URLError, ConnectionError):
                # Refused, or reset from the backlog of a listener closing: a failed probe.
                return "refused"

        for name in ("startupProbe", "livenessProbe", "readinessProbe"):
            check(probe(name) == 200, f"{name} failed on a started server")

        # The keys are the Secret's, so every replica takes the same ones.
        predict = pod.api["inference"] + "/predictions/tiny"
        body = json.dumps(EXPECTED["tiny"]["input"]).encode()
        check(http("POST", predict, body)[0] == 401, "inference without a key was let in")
        status, answer = http("POST", predict, body, token=keys["inference"]["key"])
        check(status == 200, f"inference with the Secret's key: {status} {answer[:200]!r}")

        name = autoscaler_metric()
        check(metric(pod, name) == 0, f"{name} is not 0 on an idle server")
        infer = pod.api["inference"] + "/v2/models/slow/infer"
        stop = threading.Event()
        failures = []

        def client():
            while not stop.is_set():
                status, answer = http("POST", infer, slow_body(20), token=keys["inference"]["key"])
                if status not in (200, 503):
                    failures.append((status, answer[:200]))

        clients = [threading.Thread(target=client) for _ in range(12)]
        for t in clients:
            t.start()
        peak, deadline = 0.0, time.time() + 20
        while time.time() < deadline and peak < 4:
            peak = max(peak, metric(pod, name))
            time.sleep(0.05)
        stop.set()
        for t in clients:
            t.join()
        check(not failures, f"requests under load failed: {failures[:3]}")
        check(peak >= 4, f"{name} peaked at {peak} with 12 clients, never reaching the target of 4")
        deadline = time.time() + 10
        while metric(pod, name) > 0 and time.time() < deadline:
            time.sleep(0.05)
        check(metric(pod, name) == 0, f"{name} did not fall back to 0 after the load")
        print(f"ok: {name} rose to {peak:g} under load and fell to 0", flush=True)

        # The kubelet: preStop (sleep), then SIGTERM, then SIGKILL at the grace period's end.
        pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        drain = int(re.search(r"^drain_timeout=(\d+)$", config, re.M).group(1))
        grace = spec["terminationGracePeriodSeconds"]
        check(pre_stop + drain < grace, f"preStop {pre_stop} s + drain {drain} s do not fit in {grace} s")
        answers = []
        long_request = threading.Thread(
            target=lambda: answers.append(http("POST", infer, slow_body(150), token=keys["inference"]["key"]))
        )
        long_request.start()
        deadline = time.time() + 10
        while metric(pod, name) < 1 and time.time() < deadline:
            time.sleep(0.01)
        check(metric(pod, name) >= 1, "the long request never got in flight")
        sigterm = time.time()
        pod.process.send_signal(signal.SIGTERM)
        deadline = time.time() + 5
        while probe("readinessProbe") == 200 and time.time() < deadline:
            time.sleep(0.02)
        # A new connection is refused (the listeners close at SIGTERM); one kept alive gets 503.
        check(probe("readinessProbe") in (503, "refused"), "readiness still passes after SIGTERM")
        long_request.join()
        check(answers and answers[0][0] == 200, f"the request in flight at SIGTERM got {answers}")
        code = pod.process.wait(timeout=grace - pre_stop)
        check(code == 0, f"oxserve exited {code} after SIGTERM")
        print(f"ok: SIGTERM drained in {time.time() - sigterm:.2f} s (grace {grace - pre_stop} s after preStop)", flush=True)
    finally:
        pod.stop()


# KServe's documented config.properties for its TorchServe runtime, with the snapshot's settings
# chosen apart from the archive's own (maxWorkers 2, batchSize 2, maxBatchDelay 20), to see them win.
KSERVE_CONFIG = """inference_address=http://0.0.0.0:8085
management_address=http://0.0.0.0:8085
metrics_address=http://0.0.0.0:8082
grpc_inference_port=7070
grpc_management_port=7071
enable_metrics_api=true
metrics_format=prometheus
number_of_netty_threads=4
job_queue_size=10
enable_envvars_config=true
install_py_dep_per_model=true
model_store=/mnt/models/model-store
model_snapshot={"name":"startup.cfg","modelCount":2,"models":{"tiny":{"1.0":{"defaultVersion":true,"marName":"tiny_ts.mar","minWorkers":1,"maxWorkers":3,"batchSize":4,"maxBatchDelay":15,"responseTimeout":120}},"batch_len":{"1.0":{"defaultVersion":true,"marName":"batch_len.mar","minWorkers":1,"maxWorkers":1,"batchSize":1,"maxBatchDelay":10,"responseTimeout":120}}}}
"""


def template(container, labels, name):
    """KServe's placeholders: the InferenceService's name and labels."""
    text = json.dumps(container)
    text = text.replace("{{.Name}}", name)
    text = re.sub(r"\{\{\.Labels\.(\w+)\}\}", lambda m: labels[m.group(1)], text)
    check("{{" not in text, f"a placeholder KServe would not fill: {text}")
    return json.loads(text)


def runtime(file):
    doc = documents(K8S / "kserve" / file)[0]
    check(doc["kind"] == "ClusterServingRuntime", f"{file} is a {doc['kind']}")
    args = doc["spec"]["containers"][0]["args"]
    for flag in LISTENER_FLAGS:
        check(any(a.startswith(flag) for a in args), f"{file} leaves {flag} to its default")
    mgmt = [a for a in args if a.startswith("--management-address=")][0]
    check("127.0.0.1" in mgmt, f"{file}: the management API (no key: KServe's auth) must stay on loopback")
    return doc


async def kserve_clients(pod, model, inputs, expected):
    base = pod.api["inference"]
    async with InferenceRESTClient(RESTConfig(protocol="v1")) as c:
        check(await c.is_server_live(base), "REST v1: server not live")
        check(await c.is_model_ready(base, model), "REST v1: model not ready")
        answer = await c.infer(base, {"instances": [inputs]}, model_name=model)
        check(np.allclose(answer["predictions"][0], expected, atol=1e-4), f"REST v1 answered {answer}")
    async with InferenceRESTClient(RESTConfig(protocol="v2")) as c:
        check(await c.is_server_ready(base), "REST v2: server not ready")
        check(await c.is_model_ready(base, model), "REST v2: model not ready")
        meta = json.loads(http("GET", f"{base}/v2/models/{model}")[1])
        tensor = InferInput(name=meta["inputs"][0]["name"], shape=[1, len(inputs)], datatype="FP32", data=inputs)
        answer = await c.infer(base, InferRequest(model_name=model, infer_inputs=[tensor]), model_name=model)
        check(np.allclose(answer.outputs[0].as_numpy().ravel(), expected, atol=1e-4), "REST v2 answer differs")
    async with InferenceGRPCClient(url=pod.api["grpc"].split("://", 1)[1]) as g:
        check(await g.is_server_live(), "gRPC v2: server not live")
        check(await g.is_server_ready(), "gRPC v2: server not ready")
        check(await g.is_model_ready(model), "gRPC v2: model not ready")
        tensor = InferInput(name=meta["inputs"][0]["name"], shape=[1, len(inputs)], datatype="FP32")
        tensor.set_data_from_numpy(np.array([inputs], dtype=np.float32))
        answer = await g.infer(InferRequest(model_name=model, infer_inputs=[tensor]))
        check(np.allclose(answer.outputs[0].as_numpy().ravel(), expected, atol=1e-4), "gRPC v2 answer differs")


async def python_handler(pod):
    """KServe's v1 client to a Python handler: TS_SERVICE_ENVELOPE=kserve (from the runtime's env)
    hands the handler the instances and wraps its answers as predictions."""
    base = pod.api["inference"]
    async with InferenceRESTClient(RESTConfig(protocol="v1")) as c:
        check(await c.is_model_ready(base, "batch_len"), "REST v1: the Python model is not ready")
        answer = await c.infer(base, {"instances": [1, 2, 3]}, model_name="batch_len")
        check(answer == {"predictions": [{"batch": 3}] * 3}, f"the Python handler answered {answer}")


def kserve_torchserve_layout(work):
    doc = runtime("clusterservingruntime-torchserve-layout.yaml")
    check("v1" in doc["spec"]["protocolVersions"], "the runtime does not offer v1")
    # KServe's TorchServe defaults for protocol v1: serviceEnvelope=kserve, PROTOCOL_VERSION=v1.
    container = template(doc["spec"]["containers"][0], {"serviceEnvelope": "kserve"}, "mnist")
    models = work / "mnt-models"
    (models / "config").mkdir(parents=True)
    (models / "model-store").mkdir()
    shutil.copy(ROOT / "tests" / "fixtures" / "torch-model-archiver" / "tiny_ts.mar", models / "model-store")
    # A Python handler, packed as a user packs one, run on TorchServe's own worker: the `python`
    # image puts that worker's venv first on PATH, as PATH does here.
    handler = ROOT / "tests" / "fixtures" / "python" / "batch_len"
    subprocess.run(
        [OXSERVE, "archive", "--model-name", "batch_len", "--handler", str(handler / "batch_handler.py"),
         "--config-file", str(handler / "model-config.yaml"), "--export-path", str(models / "model-store")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    worker = ROOT / ".venv-python-worker" / "bin"
    check(worker.exists(), "no TorchServe worker: run bash scripts/install-python-worker.sh")
    (models / "config" / "config.properties").write_text(
        loopback(KSERVE_CONFIG.replace("/mnt/models", str(models)))
    )
    mounts = {"/mnt/models": models, "/tmp": work / "tmp"}
    path = f"{worker}:{os.environ['PATH']}"
    pod = Pod(container, mounts, work, env={"PROTOCOL_VERSION": "v1", "PATH": path})
    try:
        status, body = http("GET", pod.api["management"] + "/models/tiny")
        check(status == 200, f"describe tiny: {status}")
        d = json.loads(body)[0]
        settings = (d["maxWorkers"], d["batchSize"], d["maxBatchDelay"])
        check(settings == (3, 4, 15), f"model_snapshot's settings not applied: {settings}")
        asyncio.run(kserve_clients(pod, "tiny", EXPECTED["tiny"]["input"], EXPECTED["tiny"]["output"]))
        asyncio.run(python_handler(pod))
        print("ok: kserve-oxserve: model_snapshot loaded; KServe SDK REST v1, REST v2, gRPC v2 answered; "
              "a Python handler answered v1 through the kserve envelope", flush=True)
        pod.process.send_signal(signal.SIGTERM)
        check(pod.process.wait(timeout=30) == 0, "oxserve did not exit 0 after SIGTERM")
    finally:
        pod.stop()


def kserve_onnx(work):
    doc = runtime("clusterservingruntime-onnx.yaml")
    isvc = documents(K8S / "kserve" / "inferenceservice-onnx.yaml")[0]
    name = isvc["metadata"]["name"]
    container = template(doc["spec"]["containers"][0], {}, name)
    models = work / "mnt-models"
    models.mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "models" / "tiny.onnx", models / "model.onnx")
    pod = Pod(container, {"/mnt/models": models, "/tmp": work / "tmp"}, work)
    try:
        asyncio.run(kserve_clients(pod, name, EXPECTED["tiny"]["input"], EXPECTED["tiny"]["output"]))
        print(f"ok: kserve-oxserve-onnx: served as {name}; KServe SDK REST v1, REST v2, gRPC v2 answered", flush=True)
    finally:
        pod.stop()


def main():
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        for step in (deployment, kserve_torchserve_layout, kserve_onnx):
            PORTS.clear()
            (work / step.__name__).mkdir()
            step(work / step.__name__)


if __name__ == "__main__":
    main()
