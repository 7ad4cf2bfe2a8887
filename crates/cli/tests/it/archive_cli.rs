//! Runs the real `oxserve archive` binary: every output format, the manifest it writes, and the
//! refusal to overwrite without `--force`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use oxserve_store::archive::{SourceKind, UnpackLimits, unpack};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A dummy model folder and an empty export folder.
struct Workspace {
    tmp: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Result<Self, Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let src = tmp.path().join("src");
        fs::create_dir_all(src.join("assets"))?;
        fs::write(src.join("model.onnx"), b"dummy weights")?;
        fs::write(src.join("model-config.yaml"), "batchSize: 8\nmaxBatchDelay: 5\n")?;
        fs::write(src.join("index_to_name.json"), r#"{"0": "cat", "1": "dog"}"#)?;
        fs::write(src.join("assets/vocab.txt"), "hello\n")?;
        fs::create_dir(tmp.path().join("out"))?;
        Ok(Self { tmp })
    }

    fn src(&self, name: &str) -> PathBuf {
        self.tmp.path().join("src").join(name)
    }

    fn out(&self) -> PathBuf {
        self.tmp.path().join("out")
    }

    /// Runs `oxserve archive` for the dummy model with `extra` flags appended.
    fn archive(&self, extra: &[&str]) -> Result<Output, std::io::Error> {
        let extra_files = format!(
            "{},{}",
            self.src("index_to_name.json").display(),
            self.src("assets").display()
        );
        Command::new(env!("CARGO_BIN_EXE_oxserve"))
            .arg("archive")
            .args(["--model-name", "toy", "--version", "2.5"])
            .arg("--serialized-file")
            .arg(self.src("model.onnx"))
            .arg("--config-file")
            .arg(self.src("model-config.yaml"))
            .args(["--extra-files", &extra_files])
            .arg("--export-path")
            .arg(self.out())
            .args(extra)
            .output()
    }
}

fn stdout_path(output: &Output) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "oxserve archive failed ({:?}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Unpacks `path` and checks the manifest the CLI wrote and the files it copied.
fn check_archive(path: &Path, staging: &Path, kind: SourceKind) -> TestResult {
    let limits = UnpackLimits { staging_dir: Some(staging.to_path_buf()), ..Default::default() };
    let model = unpack(path, &limits)?;
    assert_eq!(model.kind(), kind);
    let manifest = serde_json::to_value(&model.manifest)?;
    assert_eq!(manifest["runtime"], "python");
    assert_eq!(manifest["archiverVersion"], "0.12.0");
    assert!(manifest["createdOn"].is_string(), "{manifest}");
    assert_eq!(
        manifest["model"],
        serde_json::json!({
            "modelName": "toy",
            "serializedFile": "model.onnx",
            "modelVersion": "2.5",
            "configFile": "model-config.yaml",
        })
    );
    let weights = model.serialized_file().ok_or("no serialized file")?;
    assert_eq!(fs::read(weights)?, b"dummy weights");
    let config = model.config_file().ok_or("no config file")?;
    assert!(fs::read_to_string(config)?.contains("batchSize: 8"));
    assert!(model.file("index_to_name.json").is_some());
    assert!(model.file("vocab.txt").is_some(), "extra folder contents go to the root");
    Ok(())
}

#[test]
fn packs_every_format() -> TestResult {
    let cases = [
        ("default", "toy.mar", SourceKind::Zip),
        ("zip-store", "toy.mar", SourceKind::Zip),
        ("tgz", "toy.tar.gz", SourceKind::Tgz),
        ("no-archive", "toy", SourceKind::Directory),
    ];
    for (format, file, kind) in cases {
        let ws = Workspace::new()?;
        let output = ws.archive(&["--archive-format", format])?;
        assert_success(&output);
        let written = ws.out().join(file);
        assert_eq!(stdout_path(&output), written, "{format}");
        check_archive(&written, ws.tmp.path(), kind)?;
    }
    Ok(())
}

#[test]
fn default_format_is_a_mar() -> TestResult {
    let ws = Workspace::new()?;
    let output = ws.archive(&[])?;
    assert_success(&output);
    assert_eq!(stdout_path(&output), ws.out().join("toy.mar"));
    Ok(())
}

#[test]
fn refuses_to_overwrite_without_force() -> TestResult {
    let ws = Workspace::new()?;
    assert_success(&ws.archive(&[])?);
    let before = fs::read(ws.out().join("toy.mar"))?;

    let again = ws.archive(&[])?;
    assert_eq!(again.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("--force"), "{stderr}");
    assert!(stderr.contains("toy.mar"), "{stderr}");
    assert_eq!(fs::read(ws.out().join("toy.mar"))?, before, "refusal must not touch the file");

    fs::write(ws.src("model.onnx"), b"new weights")?;
    assert_success(&ws.archive(&["--force"])?);
    let limits = UnpackLimits { staging_dir: Some(ws.tmp.path().into()), ..Default::default() };
    let model = unpack(&ws.out().join("toy.mar"), &limits)?;
    assert_eq!(fs::read(model.serialized_file().ok_or("no weights")?)?, b"new weights");

    assert_success(&ws.archive(&["-f"])?);
    Ok(())
}

#[test]
fn bad_input_fails_with_a_clear_message() -> TestResult {
    let ws = Workspace::new()?;
    let output = Command::new(env!("CARGO_BIN_EXE_oxserve"))
        .args(["archive", "--model-name", "../evil", "--serialized-file"])
        .arg(ws.src("model.onnx"))
        .arg("--export-path")
        .arg(ws.out())
        .output()?;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid model name"));

    let output = Command::new(env!("CARGO_BIN_EXE_oxserve"))
        .args(["archive", "--model-name", "toy", "--serialized-file"])
        .arg(ws.src("missing.onnx"))
        .arg("--export-path")
        .arg(ws.out())
        .output()?;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not exist"));
    assert_eq!(fs::read_dir(ws.out())?.count(), 0, "nothing written on failure");
    Ok(())
}

#[test]
fn help_lists_torch_model_archiver_flags() -> TestResult {
    let output =
        Command::new(env!("CARGO_BIN_EXE_oxserve")).args(["archive", "--help"]).output()?;
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--model-name",
        "--version",
        "--serialized-file",
        "--model-file",
        "--handler",
        "--extra-files",
        "--config-file",
        "--requirements-file",
        "--runtime",
        "--export-path",
        "--archive-format",
        "--force",
        "no-archive",
        "zip-store",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    Ok(())
}
