//! Library files that pass the header check but are not a usable ONNX Runtime.
//!
//! A process keeps the first ONNX Runtime it loads, after which any other file is refused as
//! `AlreadyLoaded` before it is even opened. These tests therefore live in their own test binary
//! (their own process) in which no load ever succeeds.

use std::path::PathBuf;

use oxserve_backend_ort::{OrtBackend, OrtConfig, OrtSetupError, find_library};

fn backend(library: PathBuf) -> Result<OrtBackend, OrtSetupError> {
    OrtBackend::new(OrtConfig { library: Some(library), ..OrtConfig::default() })
}

/// A real shared library without `OrtGetApiBase`: the provider shim shipped next to libonnxruntime.
#[test]
fn a_library_that_is_not_onnxruntime_is_refused() {
    let Ok(ort) = find_library(None) else {
        eprintln!("ONNX Runtime not installed (bash scripts/install-onnxruntime.sh); skipping");
        return;
    };
    let Some(shim) = ort.parent().map(|d| d.join("libonnxruntime_providers_shared.so")) else {
        return;
    };
    if !shim.exists() {
        eprintln!("{} not found; skipping", shim.display());
        return;
    }
    let err = backend(shim).expect_err("not ONNX Runtime");
    assert!(matches!(err, OrtSetupError::NotOnnxRuntime { .. }), "{err:?}");
    eprintln!("{err}");
    assert!(err.to_string().contains("install-onnxruntime.sh"), "{err}");
}

/// `OXSERVE_ORT_OLD_DYLIB=/path/to/libonnxruntime.so.1.22.0` checks that a too-old library is an
/// error naming its version. Get one with `pip download --no-deps onnxruntime==1.22.0` and unzip
/// `onnxruntime/capi/libonnxruntime.so*` from the wheel.
#[test]
fn an_old_onnxruntime_is_refused_with_its_version() {
    let Some(old) = std::env::var_os("OXSERVE_ORT_OLD_DYLIB") else {
        eprintln!("OXSERVE_ORT_OLD_DYLIB not set; skipping the old-version check");
        return;
    };
    let err = backend(PathBuf::from(old)).expect_err("too old");
    match &err {
        OrtSetupError::UnsupportedVersion { found, .. } => {
            assert!(found.starts_with("1."), "{err}")
        }
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
    eprintln!("{err}");
    assert!(err.to_string().contains("1.31 or newer"), "{err}");
}
