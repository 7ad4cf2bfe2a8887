"""`oxserve serve` as a child process, for the runners of peers' own test suites.

Imported by torchserve_postman.py and triton_upstream.py (Python puts a script's own folder first
on its import path).
"""

import subprocess

# The APIs in the order oxserve's "Model server started." line names their addresses.
APIS = ["inference", "management", "metrics", "grpc_inference", "grpc_management"]


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
