//! `oxserve tune` as a user runs it: it starts oxserve itself, sweeps a TorchServe auto_benchmark
//! YAML, names the recommended configuration, writes the report with PNG and SVG charts, and
//! merges two runs into one report.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn oxserve() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_oxserve"));
    command.env("RUST_LOG", "warn");
    command
}

#[test]
fn tune_starts_oxserve_sweeps_and_recommends() {
    let dir = tempfile::tempdir().unwrap();
    let input = repo().join("examples/inputs/tiny.json");
    let yaml = format!(
        "tiny:\n  cpu:\n    benchmark_engine: ab\n    url: tiny\n    workers: 1\n    batch_size: [1, 4]\n    \
         batch_delay: 1\n    requests: 150\n    concurrency: 4\n    input: {}\n    processors: [cpu]\n    \
         backend_profiling: false\n",
        input.display()
    );
    let config = dir.path().join("sweep.yaml");
    std::fs::write(&config, yaml).unwrap();
    let out = dir.path().join("run");
    let output = oxserve()
        .args(["tune", "--sla-p99-ms", "60000", "--no-progress", "--label", "oxserve"])
        .arg("--config")
        .arg(&config)
        .arg("--model-store")
        .arg(repo().join("examples/model-store"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("recommended: oxserve/tiny_cpu_w1_b"), "{stdout}");
    assert!(stdout.contains("runner-up: oxserve/tiny_cpu_w1_b"), "{stdout}");
    assert!(stderr.contains("ignoring tiny.cpu.backend_profiling"), "{stderr}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("## Recommendation") && report.contains("throughput_vs_p99.png"),
        "{report}"
    );
    for chart in ["throughput_vs_p99", "latency"] {
        let png = std::fs::read(out.join(format!("{chart}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{chart}.png is a PNG");
        let svg = std::fs::read_to_string(out.join(format!("{chart}.svg"))).unwrap();
        assert!(svg.contains("<svg") && svg.contains("SLA"), "{chart}.svg");
    }
    for case in ["oxserve_tiny_cpu_w1_b1", "oxserve_tiny_cpu_w1_b4"] {
        let csv = std::fs::read_to_string(out.join(case).join("ab_report.csv")).unwrap();
        assert!(csv.starts_with("Benchmark,TS failed requests,"), "{csv}");
    }

    // Two runs (say TorchServe's and oxserve's) merge into one report over all their cases.
    let merged = dir.path().join("merged");
    let output = oxserve()
        .args(["tune", "--sla-p99-ms", "0.001", "--merge"])
        .arg(&out)
        .arg("--merge")
        .arg(&out)
        .arg("--out")
        .arg(&merged)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("no configuration meets the SLA"), "{stdout}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(merged.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(results["cases"].as_array().unwrap().len(), 4);
    assert!(
        std::fs::read_to_string(merged.join("report.md"))
            .unwrap()
            .contains("No configuration meets the SLA")
    );
}

#[test]
fn a_bad_sweep_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sweep.yaml");
    std::fs::write(&config, "tiny:\n  cpu:\n    url: tiny\n    input: nowhere.json\n").unwrap();
    let output = oxserve().arg("tune").arg("--config").arg(&config).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a file"));
}

/// TorchServe's benchmark YAMLs name a local archive by its path; `oxserve tune` serves it without
/// a model store of its own (the run starts in a folder that has none).
#[test]
fn a_local_archive_path_in_the_yaml_is_served_without_a_model_store() {
    let dir = tempfile::tempdir().unwrap();
    let archives = dir.path().join("archives");
    std::fs::create_dir(&archives).unwrap();
    let tiny = repo().join("examples/model-store/tiny");
    let packed = oxserve()
        .args(["archive", "--model-name", "tiny", "--serialized-file"])
        .arg(tiny.join("tiny.onnx"))
        .arg("--export-path")
        .arg(&archives)
        .output()
        .unwrap();
    assert!(packed.status.success(), "{}", String::from_utf8_lossy(&packed.stderr));
    let input = repo().join("examples/inputs/tiny.json");
    // One model by absolute path, one relative to the YAML.
    let mode = format!(
        "    workers: 1\n    batch_size: 1\n    requests: 40\n    concurrency: 2\n    input: {}\n",
        input.display()
    );
    let yaml = format!(
        "tiny:\n  cpu:\n    url: {}\n{mode}relative:\n  cpu:\n    url: archives/tiny.mar\n{mode}",
        archives.join("tiny.mar").display(),
    );
    let config = dir.path().join("sweep.yaml");
    std::fs::write(&config, yaml).unwrap();
    let output = oxserve()
        .current_dir(dir.path())
        .args(["tune", "--sla-p99-ms", "60000", "--no-progress", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("recommended: oxserve/"), "{stdout}");
    for case in ["oxserve_tiny_cpu_w1_b1", "oxserve_relative_cpu_w1_b1"] {
        let csv = std::fs::read_to_string(dir.path().join("run").join(case).join("ab_report.csv"));
        assert!(csv.is_ok(), "{case} was not measured: {stdout}");
    }
}
