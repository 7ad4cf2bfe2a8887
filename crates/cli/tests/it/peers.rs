//! The peers' own test suites against the real binary: TorchServe 0.12's management and HTTPS
//! Postman collections, run by newman (`tests/interop/torchserve_postman.py` sets the server up as
//! TorchServe's runner does and lists the rows that assert oxserve's documented differences).

use std::path::Path;
use std::process::Command;

#[test]
fn torchserve_s_postman_collections_pass() {
    let repo = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let newman = repo.join(".tools/newman/node_modules/.bin/newman");
    assert!(newman.exists(), "no newman: run bash scripts/install-newman.sh");
    let out = Command::new("python3")
        .arg(repo.join("tests/interop/torchserve_postman.py"))
        .arg(env!("CARGO_BIN_EXE_oxserve"))
        .arg(&newman)
        .output()
        .expect("torchserve_postman.py runs");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "TorchServe's collections failed\n{stdout}\n{stderr}");
    // Both collections ran whole: every management data row, and the HTTPS collection's last request.
    assert!(stdout.contains("Iteration 82/82"), "{stdout}");
    assert!(stdout.contains("HTTPS UnRegister Model SqueezeNet"), "{stdout}");
    assert!(stdout.contains("collections pass"), "{stdout}");
}
