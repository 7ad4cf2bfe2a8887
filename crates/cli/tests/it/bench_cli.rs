//! `oxserve bench` as a user runs it, against `oxserve serve` on free loopback ports: its counts
//! agree with the server's `/metrics`, and it writes TorchServe's `ab_report.csv` and a JSON result.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// A running server, killed when dropped so a failing test never leaves it behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `oxserve serve` with the example models, no token auth; returns the inference and metrics URLs.
fn serve(dir: &Path) -> (Running, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oxserve"))
        .env("RUST_LOG", "warn")
        .args(["serve", "--models", "tiny=tiny", "--disable-token-auth"])
        .arg("--model-store")
        .arg(repo().join("examples/model-store"))
        .args([
            "--inference-address",
            "http://127.0.0.1:0",
            "--management-address",
            "http://127.0.0.1:0",
        ])
        .args([
            "--metrics-address",
            "http://127.0.0.1:0",
            "--grpc-inference-port",
            "0",
            "--grpc-management-port",
            "0",
        ])
        .arg("--log-dir")
        .arg(dir)
        .arg("--key-file")
        .arg(dir.join("key_file.json"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let line = BufReader::new(stdout).lines().next().unwrap().unwrap();
    let urls: Vec<String> = line
        .split("http://")
        .skip(1)
        .map(|s| format!("http://{}", s.split(',').next().unwrap().trim()))
        .collect();
    (running, urls[0].clone(), urls[2].clone())
}

#[test]
fn bench_counts_agree_with_the_server_and_reports_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, inference, metrics) = serve(dir.path());
    let out = dir.path().join("report");
    let output = Command::new(env!("CARGO_BIN_EXE_oxserve"))
        .args([
            "bench",
            "--model",
            "tiny",
            "--requests",
            "200",
            "--concurrency",
            "4",
            "--warmup",
            "10",
        ])
        .args([
            "--url",
            &inference,
            "--metrics-url",
            &format!("{metrics}/metrics"),
            "--no-progress",
        ])
        .args(["--batch-size", "4", "--workers", "1"])
        .arg("--input")
        .arg(repo().join("examples/inputs/tiny.json"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("200 requests in"), "{stdout}");
    assert!(stdout.contains("server counted 200 inference requests"), "{stdout}");
    assert!(stdout.contains("p99.9"), "{stdout}");

    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    assert_eq!(result["ok"], 200);
    assert_eq!(result["server_counts"]["delta"]["ts_inference_requests_total"], 200.0);
    assert!(result["server_timing"]["inference"]["count"] == 200);
    let csv = std::fs::read_to_string(out.join("ab_report.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header.len(), 30);
    assert_eq!(&header[..3], ["Benchmark", "TS failed requests", "TS throughput"]);
    assert_eq!(header[29], "gpu_memory_used_mean");
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!((row[1], row[8], row[10], row[14]), ("0", "4", "1", "200"));
}

#[test]
fn bad_bench_arguments_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let output = Command::new(env!("CARGO_BIN_EXE_oxserve"))
        .args(["bench", "--model", "tiny", "--no-progress", "--input"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.json"));
    let output = Command::new(env!("CARGO_BIN_EXE_oxserve"))
        .args(["bench", "--model", "tiny", "--requests", "5", "--duration", "1", "--input", "x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "--requests and --duration conflict");
}
