//! Opening a model source: a `.mar`/`.zip`, a `.tar.gz`, a folder or a bare `.onnx` file.
//!
//! Archives are untrusted input. They are extracted (by [`super::extract`]) into a fresh private
//! staging folder (mode 0700) that is deleted on any error or when the [`UnpackedModel`] is
//! dropped, so a half extraction is never visible. Whatever the source, every path the manifest
//! names must stay inside the model folder.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::extract::{Budget, extract_tgz, extract_zip};
use super::manifest::{MANIFEST_PATH, MAX_MANIFEST_BYTES, Manifest};
use super::{ArchiveError, UnpackLimits, io_err, safe_relative_path};

/// What a model source turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceKind {
    /// A zip (`.mar`, `.zip`), extracted to a staging folder.
    Zip,
    /// A gzip'd tar (`.tar.gz`, `.tgz`), extracted to a staging folder.
    Tgz,
    /// A folder, used in place.
    Directory,
    /// A bare `.onnx` file, used in place.
    OnnxFile,
}

/// A model ready to load: the folder holding its files and its manifest. Extracted archives live
/// in a staging folder that is deleted when this value is dropped.
#[derive(Debug)]
pub struct UnpackedModel {
    /// Folder holding the model files (canonical). For a bare `.onnx` file, its parent folder.
    pub dir: PathBuf,
    /// The archive's manifest, or one synthesized for sources without one.
    pub manifest: Manifest,
    kind: SourceKind,
    /// Keeps the extraction alive; `None` for sources used in place.
    _staging: Option<TempDir>,
}

impl UnpackedModel {
    /// The weights file named by `serializedFile`, if the manifest names one.
    pub fn serialized_file(&self) -> Option<PathBuf> {
        self.manifest_path(self.manifest.model.serialized_file.as_deref())
    }

    /// The `model-config.yaml` named by `configFile`, if the manifest names one.
    pub fn config_file(&self) -> Option<PathBuf> {
        self.manifest_path(self.manifest.model.config_file.as_deref())
    }

    /// A file at `name` (relative, `/`-separated) inside the model folder, if it exists there,
    /// e.g. `index_to_name.json`. Names that would leave the folder give `None`. For a bare
    /// `.onnx` file only the file itself is part of the model, so other names give `None`.
    pub fn file(&self, name: &str) -> Option<PathBuf> {
        let rel = safe_relative_path(name).ok()?;
        if self.kind == SourceKind::OnnxFile
            && self.manifest.model.serialized_file.as_deref().map(Path::new) != Some(&rel)
        {
            return None;
        }
        let path = fs::canonicalize(self.dir.join(rel)).ok()?;
        (path.starts_with(&self.dir) && path.is_file()).then_some(path)
    }

    /// What the source was.
    pub fn kind(&self) -> SourceKind {
        self.kind
    }

    fn manifest_path(&self, value: Option<&str>) -> Option<PathBuf> {
        // Validated when unpacked, so the join stays inside `dir`.
        Some(self.dir.join(safe_relative_path(value?).ok()?))
    }
}

/// Opens a model source: a zip (`.mar`) or gzip'd tar (recognised by magic bytes), a folder
/// (used in place) or a bare `.onnx` file (used in place). Archives are extracted under
/// `limits.staging_dir`. Sources without `MAR-INF/MANIFEST.json` get a synthesized manifest
/// naming the single `.onnx` file at their root; archives whose files all sit in one top-level
/// folder (as torch-model-archiver's `.tar.gz` does) are opened at that folder.
///
/// # Errors
///
/// [`ArchiveError::NotFound`], [`ArchiveError::UnsupportedFormat`], [`ArchiveError::UnsafeEntry`]
/// and [`ArchiveError::TooLarge`] for hostile archives, [`ArchiveError::InvalidManifest`] when
/// the manifest is malformed, escapes the folder or names missing files,
/// [`ArchiveError::NoModelFile`] / [`ArchiveError::AmbiguousModelFile`] when there is no manifest
/// and not exactly one `.onnx` file, and [`ArchiveError::Io`] / [`ArchiveError::Zip`] otherwise.
pub fn unpack(source: &Path, limits: &UnpackLimits) -> Result<UnpackedModel, ArchiveError> {
    let meta = fs::metadata(source).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ArchiveError::NotFound(source.to_path_buf()),
        _ => io_err(source)(e),
    })?;
    if meta.is_dir() {
        let dir = fs::canonicalize(source).map_err(io_err(source))?;
        let found = read_or_synthesize(&dir, source, &source_stem(&dir))?;
        return finish(source, dir, found, SourceKind::Directory, None);
    }
    if !meta.is_file() {
        return Err(ArchiveError::UnsupportedFormat(source.to_path_buf()));
    }
    match sniff(source)? {
        SourceKind::OnnxFile => open_onnx_file(source),
        kind => extract(source, meta.len(), limits, kind),
    }
}

/// Recognises zip and gzip by their magic bytes, and `.onnx` (protobuf, no magic) by extension.
fn sniff(source: &Path) -> Result<SourceKind, ArchiveError> {
    let mut magic = [0_u8; 4];
    let mut file = File::open(source).map_err(io_err(source))?;
    let mut filled = 0;
    while filled < magic.len() {
        match file.read(&mut magic[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(source)(e)),
        }
    }
    let magic = &magic[..filled];
    if [b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"].iter().any(|m| magic == *m) {
        Ok(SourceKind::Zip)
    } else if magic.starts_with(b"\x1f\x8b") {
        Ok(SourceKind::Tgz)
    } else if source.extension().is_some_and(|ext| ext.eq_ignore_ascii_case("onnx")) {
        Ok(SourceKind::OnnxFile)
    } else {
        Err(ArchiveError::UnsupportedFormat(source.to_path_buf()))
    }
}

fn open_onnx_file(source: &Path) -> Result<UnpackedModel, ArchiveError> {
    let path = fs::canonicalize(source).map_err(io_err(source))?;
    let (Some(dir), Some(file_name)) = (path.parent(), path.file_name()) else {
        return Err(ArchiveError::UnsupportedFormat(source.to_path_buf()));
    };
    let file_name = file_name.to_str().ok_or_else(|| ArchiveError::InvalidManifest {
        path: source.to_path_buf(),
        reason: "the file name is not valid UTF-8".to_owned(),
    })?;
    let manifest = Manifest::synthesized(source_stem(source), file_name);
    manifest
        .validate()
        .map_err(|reason| ArchiveError::InvalidManifest { path: source.to_path_buf(), reason })?;
    let found = Found { manifest, synthesized: true };
    finish(source, dir.to_path_buf(), found, SourceKind::OnnxFile, None)
}

/// Extracts an archive into a fresh staging folder and opens the model inside it.
fn extract(
    source: &Path,
    compressed_len: u64,
    limits: &UnpackLimits,
    kind: SourceKind,
) -> Result<UnpackedModel, ArchiveError> {
    let root = limits.staging_dir.clone().unwrap_or_else(std::env::temp_dir);
    fs::create_dir_all(&root).map_err(io_err(&root))?;
    let staging = tempfile::Builder::new()
        .prefix(".oxserve-unpack-")
        .tempdir_in(&root)
        .map_err(io_err(&root))?;
    let budget = Budget::new(limits, compressed_len);
    if kind == SourceKind::Zip {
        extract_zip(source, staging.path(), limits, &budget)?;
    } else {
        extract_tgz(source, staging.path(), limits, &budget)?;
    }
    let dir = fs::canonicalize(model_root(staging.path())?).map_err(io_err(staging.path()))?;
    let found = read_or_synthesize(&dir, source, &source_stem(source))?;
    finish(source, dir, found, kind, Some(staging))
}

/// The folder holding the model inside an extraction: the root, or its only entry when that is
/// a folder and the root has no manifest (torch-model-archiver's `.tar.gz` layout).
fn model_root(staging: &Path) -> Result<PathBuf, ArchiveError> {
    if staging.join(MANIFEST_PATH).is_file() {
        return Ok(staging.to_path_buf());
    }
    let mut entries = fs::read_dir(staging).map_err(io_err(staging))?;
    let first = entries.next().transpose().map_err(io_err(staging))?;
    if let Some(first) = first
        && entries.next().is_none()
        && first.file_type().map_err(io_err(staging))?.is_dir()
    {
        return Ok(first.path());
    }
    Ok(staging.to_path_buf())
}

/// A model's manifest and where it came from.
struct Found {
    manifest: Manifest,
    /// True when oxserve made the manifest up from a folder listing rather than reading it.
    synthesized: bool,
}

/// Reads `dir/MAR-INF/MANIFEST.json`, or synthesizes a manifest naming the single `.onnx` file
/// at the root of `dir`.
/// The model settings file a folder without a manifest may hold beside its `.onnx` file.
const MODEL_CONFIG: &str = "model-config.yaml";

fn read_or_synthesize(dir: &Path, source: &Path, stem: &str) -> Result<Found, ArchiveError> {
    let manifest_path = dir.join(MANIFEST_PATH);
    if manifest_path.is_file() {
        let file = File::open(&manifest_path).map_err(io_err(&manifest_path))?;
        let mut bytes = Vec::new();
        file.take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err(&manifest_path))?;
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(ArchiveError::InvalidManifest {
                path: source.to_path_buf(),
                reason: format!("larger than {MAX_MANIFEST_BYTES} bytes"),
            });
        }
        return Ok(Found { manifest: Manifest::from_json(&bytes, source)?, synthesized: false });
    }
    let mut candidates = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let is_onnx =
            Path::new(name).extension().is_some_and(|ext| ext.eq_ignore_ascii_case("onnx"));
        if is_onnx && entry.path().is_file() {
            candidates.push(name.to_owned());
        }
    }
    candidates.sort();
    match <[String; 1]>::try_from(candidates) {
        Ok([file]) => {
            let mut manifest = Manifest::synthesized(stem, file);
            // The settings file torch-model-archiver's `--config-file` would have named, where a
            // folder has one beside its model.
            if dir.join(MODEL_CONFIG).is_file() {
                manifest.model.config_file = Some(MODEL_CONFIG.to_owned());
            }
            manifest.validate().map_err(|reason| ArchiveError::InvalidManifest {
                path: source.to_path_buf(),
                reason,
            })?;
            Ok(Found { manifest, synthesized: true })
        }
        Err(candidates) if candidates.is_empty() => {
            Err(ArchiveError::NoModelFile(source.to_path_buf()))
        }
        Err(candidates) => {
            Err(ArchiveError::AmbiguousModelFile { path: source.to_path_buf(), candidates })
        }
    }
}

/// Checks that the weights and config the manifest names exist and, for a manifest read from the
/// source, that every file it names resolves inside `dir` even through symlinks (which only
/// folders used in place can hold; a synthesized manifest names a file found by listing `dir`,
/// so a symlinked weights file there is the operator's choice and allowed).
fn finish(
    source: &Path,
    dir: PathBuf,
    found: Found,
    kind: SourceKind,
    staging: Option<TempDir>,
) -> Result<UnpackedModel, ArchiveError> {
    let Found { manifest, synthesized } = found;
    let model = &manifest.model;
    let invalid =
        |reason: String| ArchiveError::InvalidManifest { path: source.to_path_buf(), reason };
    let named = [
        ("serializedFile", model.serialized_file.as_deref(), true),
        ("configFile", model.config_file.as_deref(), true),
        ("modelFile", model.model_file.as_deref(), false),
        ("requirementsFile", model.requirements_file.as_deref(), false),
        ("handler", model.handler_file(), false),
    ];
    for (key, value, required) in named {
        let Some(value) = value else { continue };
        let rel = safe_relative_path(value).map_err(|r| invalid(format!("model.{key} {r}")))?;
        match fs::canonicalize(dir.join(rel)) {
            Ok(path) if !synthesized && !path.starts_with(&dir) => {
                return Err(invalid(format!(
                    "model.{key} `{value}` resolves outside the model folder"
                )));
            }
            Ok(path) if required && !path.is_file() => {
                return Err(invalid(format!("model.{key} `{value}` is not a file")));
            }
            Err(_) if required => {
                return Err(invalid(format!("model.{key} `{value}` is missing from the model")));
            }
            Ok(_) | Err(_) => {}
        }
    }
    Ok(UnpackedModel { dir, manifest, kind, _staging: staging })
}

/// The model name implied by a source's file name: the stem without `.mar`, `.zip`, `.tar.gz`,
/// `.tgz` or `.onnx`.
fn source_stem(source: &Path) -> String {
    let name = source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    for suffix in [".tar.gz", ".tgz", ".mar", ".zip", ".onnx"] {
        if lower.ends_with(suffix) && lower.len() > suffix.len() {
            return name[..name.len() - suffix.len()].to_owned();
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::archive::test_support::{TestResult, assert_empty, limits, zip_bytes};

    fn manifest_json(model: serde_json::Value) -> Vec<u8> {
        json!({ "runtime": "python", "model": model }).to_string().into_bytes()
    }

    #[test]
    fn bare_onnx_file_is_used_in_place() -> TestResult {
        let tmp = tempfile::tempdir()?;
        fs::write(tmp.path().join("squeezenet.onnx"), b"weights")?;
        fs::write(tmp.path().join("index_to_name.json"), b"{}")?;
        let model = unpack(&tmp.path().join("squeezenet.onnx"), &limits(tmp.path()))?;
        assert_eq!(model.kind(), SourceKind::OnnxFile);
        assert_eq!(model.dir, fs::canonicalize(tmp.path())?);
        assert_eq!(model.manifest, Manifest::synthesized("squeezenet", "squeezenet.onnx"));
        assert_eq!(model.manifest.model.version(), Some("1.0"));
        let weights = model.serialized_file().ok_or("no weights")?;
        assert_eq!(fs::read(&weights)?, b"weights");
        assert_eq!(model.file("squeezenet.onnx"), Some(weights));
        // A sibling file belongs to the folder, not to this model.
        assert_eq!(model.file("index_to_name.json"), None);
        assert_eq!(model.config_file(), None);
        Ok(())
    }

    #[test]
    fn folder_without_manifest_gets_one_synthesized() -> TestResult {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("resnet-18");
        fs::create_dir(&dir)?;
        fs::write(dir.join("net.onnx"), b"weights")?;
        fs::write(dir.join("index_to_name.json"), b"{}")?;
        let model = unpack(&dir, &limits(tmp.path()))?;
        assert_eq!(model.kind(), SourceKind::Directory);
        assert_eq!(model.dir, fs::canonicalize(&dir)?);
        assert_eq!(model.manifest, Manifest::synthesized("resnet-18", "net.onnx"));
        assert!(model.file("index_to_name.json").is_some());
        assert_eq!(model.config_file(), None);
        fs::write(dir.join("model-config.yaml"), b"batchSize: 8\n")?;
        let model = unpack(&dir, &limits(tmp.path()))?;
        assert_eq!(model.config_file(), Some(model.dir.join("model-config.yaml")));
        Ok(())
    }

    #[test]
    fn folder_needs_exactly_one_onnx_file_without_manifest() -> TestResult {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("m");
        fs::create_dir(&dir)?;
        fs::write(dir.join("readme.txt"), b"")?;
        assert!(matches!(unpack(&dir, &limits(tmp.path())), Err(ArchiveError::NoModelFile(_))));
        fs::write(dir.join("a.onnx"), b"")?;
        fs::write(dir.join("b.ONNX"), b"")?;
        let err = unpack(&dir, &limits(tmp.path())).expect_err("ambiguous");
        assert!(
            matches!(&err, ArchiveError::AmbiguousModelFile { candidates, .. } if candidates == &["a.onnx", "b.ONNX"]),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn zip_without_manifest_is_named_after_the_archive() -> TestResult {
        let tmp = tempfile::tempdir()?;
        let path = tmp.path().join("squeeze.mar");
        fs::write(&path, zip_bytes(&[("weights.onnx", b"w"), ("labels.txt", b"l")])?)?;
        let model = unpack(&path, &limits(tmp.path()))?;
        assert_eq!(model.manifest, Manifest::synthesized("squeeze", "weights.onnx"));
        assert!(model.file("labels.txt").is_some());
        Ok(())
    }

    #[test]
    fn archives_are_recognised_by_content_not_extension() -> TestResult {
        let tmp = tempfile::tempdir()?;
        let path = tmp.path().join("download.bin");
        let manifest = manifest_json(json!({"modelName": "m", "serializedFile": "m.onnx"}));
        fs::write(&path, zip_bytes(&[(MANIFEST_PATH, &manifest), ("m.onnx", b"w")])?)?;
        let model = unpack(&path, &limits(tmp.path()))?;
        assert_eq!(
            (model.kind(), model.manifest.model.model_name.as_str()),
            (SourceKind::Zip, "m")
        );
        Ok(())
    }

    #[test]
    fn tgz_with_files_at_the_root_opens() -> TestResult {
        let tmp = tempfile::tempdir()?;
        let path = tmp.path().join("plain.tgz");
        let gz = flate2::write::GzEncoder::new(File::create(&path)?, flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_mode(0o644);
        tar.append_data(&mut header, "./plain.onnx", &b"w"[..])?;
        tar.into_inner()?.finish()?;
        let model = unpack(&path, &limits(tmp.path()))?;
        assert_eq!(model.manifest, Manifest::synthesized("plain", "plain.onnx"));
        Ok(())
    }

    #[test]
    fn opens_a_real_torch_model_archiver_mar() -> TestResult {
        let mar = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/torch-model-archiver/tiny_ts.mar");
        let tmp = tempfile::tempdir()?;
        let model = unpack(&mar, &limits(tmp.path()))?;
        assert_eq!(model.kind(), SourceKind::Zip);
        let m = &model.manifest.model;
        assert_eq!(
            (m.model_name.as_str(), m.handler.as_deref()),
            ("tiny_ts", Some("base_handler"))
        );
        assert_eq!(model.manifest.archiver_version.as_deref(), Some("0.12.0"));
        assert!(model.serialized_file().is_some_and(|p| p.ends_with("tiny.onnx") && p.is_file()));
        assert!(model.config_file().is_some_and(|p| p.is_file()));
        assert!(model.file("notes.txt").is_some());
        Ok(())
    }

    #[test]
    fn unknown_and_missing_sources_are_refused() -> TestResult {
        let tmp = tempfile::tempdir()?;
        fs::write(tmp.path().join("notes.txt"), b"hello")?;
        assert!(matches!(
            unpack(&tmp.path().join("notes.txt"), &limits(tmp.path())),
            Err(ArchiveError::UnsupportedFormat(_))
        ));
        assert!(matches!(
            unpack(&tmp.path().join("gone.mar"), &limits(tmp.path())),
            Err(ArchiveError::NotFound(_))
        ));
        Ok(())
    }

    #[test]
    fn manifest_paths_outside_the_model_are_refused() -> TestResult {
        let tmp = tempfile::tempdir()?;
        let staging = tmp.path().join("staging");
        let cases = [
            json!({"modelName": "m", "serializedFile": "../../etc/passwd"}),
            json!({"modelName": "m", "serializedFile": "m.onnx", "configFile": "/etc/passwd"}),
            json!({"modelName": "m", "serializedFile": "m.onnx", "requirementsFile": "../r.txt"}),
            json!({"modelName": "m", "serializedFile": "missing.onnx"}),
        ];
        for (i, model) in cases.into_iter().enumerate() {
            let path = tmp.path().join(format!("case{i}.mar"));
            let manifest = manifest_json(model);
            fs::write(&path, zip_bytes(&[(MANIFEST_PATH, &manifest), ("m.onnx", b"w")])?)?;
            let err = unpack(&path, &limits(&staging)).expect_err("must be refused");
            assert!(matches!(err, ArchiveError::InvalidManifest { .. }), "{err}");
            assert_empty(&staging);
        }
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn manifest_paths_may_not_escape_through_symlinks() -> TestResult {
        let tmp = tempfile::tempdir()?;
        fs::write(tmp.path().join("secret.yaml"), b"secret")?;
        let dir = tmp.path().join("m");
        fs::create_dir_all(dir.join("MAR-INF"))?;
        fs::write(dir.join("m.onnx"), b"w")?;
        std::os::unix::fs::symlink(tmp.path().join("secret.yaml"), dir.join("config.yaml"))?;
        let manifest =
            json!({"modelName": "m", "serializedFile": "m.onnx", "configFile": "config.yaml"});
        fs::write(dir.join(MANIFEST_PATH), manifest_json(manifest))?;
        let err = unpack(&dir, &limits(tmp.path())).expect_err("must be refused");
        assert!(err.to_string().contains("outside the model folder"), "{err}");
        Ok(())
    }
}
