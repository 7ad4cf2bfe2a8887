//! The real Triton/KServe Python client (`tritonclient`, HTTP and gRPC, JSON and binary) against a
//! port-0 server with the example models: the check that oxserve speaks the protocols as their own
//! clients do, not as this repository assumes they do. The client script is
//! `tests/interop/tritonclient_check.py`; the client is installed by `scripts/install-tritonclient.sh`
//! (CI runs it from scripts/test.sh). Without it this test fails and says how to install it, unless
//! `OXSERVE_SKIP_TRITON=1`.

#![allow(clippy::unwrap_used)]

use crate::common::{TestServer, repo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tritonclient_http_and_grpc_agree_with_the_json_path() {
    let python = repo().join(".venv-triton/bin/python");
    if !python.exists() {
        if std::env::var("OXSERVE_SKIP_TRITON").is_ok_and(|v| v == "1") {
            eprintln!("skipped: OXSERVE_SKIP_TRITON=1 and {} is missing", python.display());
            return;
        }
        panic!(
            "{} is missing: install the Triton client with `bash scripts/install-tritonclient.sh` \
             (or set OXSERVE_SKIP_TRITON=1 to skip this test)",
            python.display()
        );
    }
    let s = TestServer::default().await;
    let strip = |url: &str| url.trim_start_matches("http://").to_owned();
    let (http, grpc) = (strip(&s.inference), strip(&s.grpc_inference));
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(repo().join("tests/interop/tritonclient_check.py"))
            .args(["--http", &http, "--grpc", &grpc, "--expected"])
            .arg(repo().join("examples/inputs/expected.json"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "tritonclient check failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("tritonclient interop: ok"), "{stdout}\n{stderr}");
    println!("{stdout}");
    s.stop().await;
}
