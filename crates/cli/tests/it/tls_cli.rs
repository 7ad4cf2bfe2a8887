//! HTTPS as TorchServe's documented set-up writes it: `https://` addresses with `certificate_file`
//! and `private_key_file` in config.properties; the listeners whose address says `http://` stay
//! plain.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

use super::serve_cli::{Running, oxserve, terminate};

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tls")
}

/// The URL the started line gives for `api` ("Inference API", "management API"...).
fn url_of<'a>(line: &'a str, api: &str) -> &'a str {
    let rest = &line[line.find(api).unwrap_or_else(|| panic!("{api} in {line}")) + api.len()..];
    rest.trim_start_matches(": ").split(',').next().unwrap()
}

/// A config.properties in `dir`: inference on `https://` with the fixture certificate `cert`
/// (`<cert>-cert.pem`, `<cert>-key.pem`), the other listeners plain, every port free, no keys.
fn https_inference_config(dir: &Path, cert: &str) -> std::path::PathBuf {
    let config = dir.join("config.properties");
    let text = format!(
        "inference_address=https://127.0.0.1:0\nmanagement_address=http://127.0.0.1:0\n\
         metrics_address=http://127.0.0.1:0\ngrpc_inference_port=0\ngrpc_management_port=0\n\
         certificate_file={0}/{cert}-cert.pem\nprivate_key_file={0}/{cert}-key.pem\n\
         disable_token_authorization=true\n",
        fixtures().display()
    );
    std::fs::write(&config, text).unwrap();
    config
}

// Two threads: the client's HTTP/2 connection answers the server's GOAWAY ping while `terminate`
// blocks this one, so the drain ends at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_addresses_serve_tls_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let config = https_inference_config(dir.path(), "localhost");
    let mut child = oxserve()
        .arg("serve")
        .arg("--ts-config")
        .arg(&config)
        .arg("--log-dir")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(Some(child));
    let line = BufReader::new(stdout).lines().next().expect("the server printed nothing").unwrap();
    let inference = url_of(&line, "Inference API");
    let metrics = url_of(&line, "metrics API");
    assert!(inference.starts_with("https://127.0.0.1:"), "{line}");
    assert!(metrics.starts_with("http://127.0.0.1:"), "{line}");

    let cert = std::fs::read(fixtures().join("localhost-cert.pem")).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
        .build()
        .unwrap();
    let ping = client.get(format!("{inference}/ping")).send().await.unwrap();
    assert_eq!(ping.status(), 200);
    let plain = client.get(format!("{metrics}/metrics")).send().await.unwrap();
    assert_eq!(plain.status(), 200);
    terminate(running);
}

#[test]
fn an_rsa_1024_key_is_refused_as_too_weak() {
    let dir = tempfile::tempdir().unwrap();
    let config = https_inference_config(dir.path(), "rsa1024");
    let out = oxserve()
        .arg("serve")
        .arg("--ts-config")
        .arg(&config)
        .arg("--log-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("2048 to 8192 bits"), "{stderr}");
}
