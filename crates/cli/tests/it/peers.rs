//! The peers' own test suites against the real binary: TorchServe 0.12's management, inference and
//! HTTPS Postman collections, run by newman (`tests/interop/torchserve_postman.py` sets the server up as
//! TorchServe's runner does and lists the rows that assert oxserve's documented differences), and
//! NVIDIA's Triton client examples and `L0_http` tests (`tests/interop/triton_upstream.py`, with
//! the ONNX stand-ins of the models they call), and TorchServe's token-authorization and
//! model-control pytest suites, which start and stop the server with TorchServe's own launcher
//! through oxserve's `torchserve` command line (`tests/interop/torchserve_pytest.py`).

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

/// TorchServe's inference collection and its pytest suites use TorchServe's fixed ports (8082;
/// 8080–8082 and 7070–7071): one at a time.
static FIXED_PORTS: Mutex<()> = Mutex::new(());

/// Runs a peer-suite runner from tests/interop/ with `program` (an interpreter) against this
/// build's binary, `args` after it, and returns its standard output; the runner's exit status says
/// whether every result was as listed.
fn run_suite(program: &Path, runner: &str, args: &[&Path], env: &[(&str, &str)]) -> String {
    let out = Command::new(program)
        .arg(repo().join("tests/interop").join(runner))
        .arg(env!("CARGO_BIN_EXE_oxserve"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("{runner} runs: {e}"));
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{runner} failed\n{stdout}\n{stderr}");
    stdout.into_owned()
}

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[test]
fn torchserve_s_postman_collections_pass() {
    let _ports = FIXED_PORTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let newman = repo().join(".tools/newman/node_modules/.bin/newman");
    assert!(newman.exists(), "no newman: run bash scripts/install-newman.sh");
    let stdout = run_suite(Path::new("python3"), "torchserve_postman.py", &[&newman], &[]);
    // Both collections ran whole: every management data row, and the HTTPS collection's last request.
    assert!(stdout.contains("Iteration 82/82"), "{stdout}");
    assert!(stdout.contains("Iteration 22/22"), "{stdout}");
    assert!(stdout.contains("HTTPS UnRegister Model SqueezeNet"), "{stdout}");
    assert!(stdout.contains("collections pass"), "{stdout}");
}

#[test]
fn triton_s_client_examples_and_http_tests_pass() {
    let python = repo().join(".venv-triton/bin/python");
    assert!(python.exists(), "no Triton client: run bash scripts/install-tritonclient.sh");
    let stdout = run_suite(&python, "triton_upstream.py", &[], &[]);
    // Every example and every test ran.
    let lines = |prefix: &str| stdout.lines().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(lines("example "), 15, "{stdout}");
    assert_eq!(lines("L0_http test_"), 17, "{stdout}");
    assert!(stdout.contains("tests pass"), "{stdout}");
}

#[test]
fn torchserve_s_pytest_suites_pass_through_its_own_launcher() {
    let _ports = FIXED_PORTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let python = repo().join(".venv-torchserve-tests/bin/python");
    assert!(python.exists(), "no pytest venv: run bash scripts/install-torchserve-tests.sh");
    let stdout = run_suite(&python, "torchserve_pytest.py", &[], &[("RUST_LOG", "warn")]);
    // Both suites ran whole: 8 model-control tests and 17 token-authorization tests.
    assert!(stdout.contains("(but the listed differences): 25 tests"), "{stdout}");
}
