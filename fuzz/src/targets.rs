//! What each fuzz target does with its input. Shared by the libFuzzer binaries in
//! `fuzz_targets/` and by `crates/handlers/tests/it/fuzz_corpus.rs`, which replays every committed
//! corpus file on stable Rust. A target fails by panicking: errors are the expected answer to
//! hostile input, panics, hangs and unbounded allocations are bugs.

use std::path::Path;
use std::sync::OnceLock;

use oxserve_backend::DType;
use oxserve_backend::json::{tensor_from_nested, tensor_from_shaped};
use oxserve_core::handler::{Part, Payload};
use oxserve_handlers::input::{Want, items};
use oxserve_handlers::vision::decode::{Limits, decode};
use oxserve_store::archive::{Manifest, UnpackLimits, unpack};
use oxserve_store::remote::AllowList;

const DTYPES: [DType; 5] = [DType::F32, DType::I64, DType::F16, DType::Bool, DType::Bytes];

/// JSON → tensor, as the OIP and TorchServe JSON bodies are parsed.
pub fn json_tensor(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    for dtype in DTYPES {
        if let Ok(t) = tensor_from_nested(&value, dtype) {
            assert_eq!(
                t.shape().iter().product::<usize>(),
                t.data().len(),
                "shape and data disagree"
            );
        }
    }
    // The first element, if a small list of numbers, is used as a declared shape.
    let shape: Vec<usize> = value
        .get("shape")
        .and_then(|s| s.as_array())
        .map(|dims| dims.iter().filter_map(|d| d.as_u64()).map(|d| d as usize).collect())
        .unwrap_or_else(|| vec![1]);
    let body = value.get("data").unwrap_or(&value);
    for dtype in DTYPES {
        if let Ok(t) = tensor_from_shaped(body, dtype, shape.clone()) {
            assert_eq!(t.shape(), shape.as_slice());
        }
    }
}

/// `MAR-INF/MANIFEST.json` parsing and validation.
pub fn manifest(data: &[u8]) {
    if let Ok(m) = Manifest::from_json(data, Path::new("fuzz/MANIFEST.json")) {
        let _ = m.validate();
        let _ = m.model.handler_file();
        let again = Manifest::from_json(m.to_json_pretty().as_bytes(), Path::new("fuzz"));
        assert!(again.is_ok(), "a manifest we write cannot be read back");
    }
}

/// Archive extraction (zip or tar.gz, found by magic bytes) with small limits: whatever the
/// bytes, extraction is refused or stays inside its folder.
pub fn archive(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let source = dir.path().join("fuzz.mar");
    if std::fs::write(&source, data).is_err() {
        return;
    }
    let limits = UnpackLimits {
        max_entries: 64,
        max_total_bytes: 4 << 20,
        max_ratio: 200,
        staging_dir: Some(dir.path().to_path_buf()),
    };
    if let Ok(model) = unpack(&source, &limits) {
        let root = std::fs::canonicalize(dir.path()).expect("temp dir");
        assert!(model.dir.starts_with(&root), "extracted outside the staging folder");
        for name in ["index_to_name.json", "../x", "/etc/passwd", "MAR-INF/MANIFEST.json"] {
            if let Some(path) = model.file(name) {
                assert!(path.starts_with(&model.dir), "{name} resolved outside the model folder");
            }
        }
    }
}

fn allow_list() -> &'static AllowList {
    static LIST: OnceLock<AllowList> = OnceLock::new();
    LIST.get_or_init(|| {
        AllowList::parse("https://models.example.com/releases/,http://10.0.0.5:8000/m")
            .expect("valid list")
    })
}

/// URL allow-list matching: anything it lets through really is on an allowed host and path.
pub fn url_allowlist(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(url) = allow_list().check(text) {
        let host = url.host_str().unwrap_or_default();
        let ok = (url.scheme() == "https"
            && host == "models.example.com"
            && url.port_or_known_default() == Some(443)
            && url.path().starts_with("/releases/"))
            || (url.scheme() == "http"
                && host == "10.0.0.5"
                && url.port() == Some(8000)
                && (url.path() == "/m" || url.path().starts_with("/m/")));
        assert!(ok, "allowed a URL off the list: {text} -> {url}");
        assert!(url.username().is_empty() && url.password().is_none());
    }
}

/// Image decoding under small limits (the pixel-bomb guard).
pub fn image_decode(data: &[u8]) {
    let limits = Limits { max_width: 512, max_height: 512, max_pixels: 65_536, max_alloc: 8 << 20 };
    if let Ok(decoded) = decode(data, &limits) {
        let (w, h) = decoded.rgb.dimensions();
        assert!(u64::from(w) * u64::from(h) <= limits.max_pixels, "decoded past the pixel limit");
    }
}

/// Splitting a request into items (JSON envelopes, base64, multipart-like parts).
pub fn request_items(data: &[u8]) {
    let (content_type, body) = match data.split_first() {
        Some((0, rest)) => (Some("application/json"), rest),
        Some((1, rest)) => (Some("text/plain"), rest),
        Some((2, rest)) => (Some("image/png"), rest),
        Some((_, rest)) => (None, rest),
        None => (None, data),
    };
    let payload = Payload {
        parts: vec![Part {
            name: "body".into(),
            content_type: content_type.map(str::to_owned),
            body: bytes::Bytes::copy_from_slice(body),
        }],
    };
    for want in [Want::Binary, Want::Text] {
        let _ = items(&payload, want);
    }
}
