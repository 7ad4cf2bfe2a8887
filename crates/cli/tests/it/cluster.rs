//! What a Kubernetes cluster does with `deploy/kubernetes`, reproduced here with the real binary:
//! the Deployment's container started as the kubelet starts it (probes, the autoscaling metric
//! under load, SIGTERM's drain) and the KServe runtimes' containers called by KServe's own Python
//! SDK over REST v1, REST v2 and gRPC v2. The steps are in `tests/interop/cluster_check.py`,
//! which reads the manifests themselves, so a change to them is what gets tested.

use std::path::Path;
use std::process::Command;

#[test]
fn the_deployment_and_the_kserve_runtimes_behave_as_a_cluster_needs() {
    let repo = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let python = repo.join(".venv-kserve/bin/python");
    assert!(python.exists(), "no KServe SDK: run bash scripts/install-kserve.sh");
    let out = Command::new(python)
        .arg(repo.join("tests/interop/cluster_check.py"))
        .arg(env!("CARGO_BIN_EXE_oxserve"))
        .output()
        .expect("cluster_check.py runs");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "cluster_check.py failed\n{stdout}\n{stderr}");
    for step in ["rose to", "SIGTERM drained", "kserve-oxserve:", "kserve-oxserve-onnx:"] {
        assert!(stdout.contains(step), "step missing ({step}):\n{stdout}");
    }
}
