//! Model archives: TorchServe's `.mar` layout, read and written.
//!
//! TorchServe users ship models as `.mar` files made by `torch-model-archiver`: a zip (or a
//! `.tar.gz`, or a plain folder) with the model files at its root and a `MAR-INF/MANIFEST.json`
//! naming them. oxserve reads and writes the same layout so existing archives, scripts and model
//! stores keep working. [`pack`] writes one (the `oxserve archive` command); [`unpack`] turns any
//! model source (an archive, a folder or a bare `.onnx` file) into an [`UnpackedModel`]: a folder
//! plus a [`Manifest`].
//!
//! Archives come from outside the process, so extraction is hardened against the zip-slip and
//! decompression-bomb attacks that hit TorchServe (CVE-2023-48299, and manifest paths that escape
//! the model folder): entry names are checked component by component, links and special files are
//! refused, entry count, total size and compression ratio are capped by counting the bytes
//! actually written, and extraction happens in a private staging folder that is deleted if
//! anything fails.

mod extract;
mod manifest;
mod pack;
mod unpack;

use std::io;
use std::path::{Path, PathBuf};

pub use manifest::{
    ARCHIVER_VERSION, CREATED_ON_FORMAT, DEFAULT_RUNTIME, DEFAULT_VERSION, MANIFEST_PATH, Manifest,
    ManifestModel,
};
pub use pack::{ArchiveFormat, PackOptions, pack};
pub use unpack::{SourceKind, UnpackedModel, unpack};

/// Everything that can go wrong while packing or unpacking a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// Reading or writing a file failed.
    #[error("i/o error on `{}`", path.display())]
    Io {
        /// The file or folder being read or written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An input file or folder does not exist.
    #[error("`{}` does not exist", .0.display())]
    NotFound(PathBuf),
    /// The output already exists and overwriting was not asked for.
    #[error("`{}` already exists; pass --force to overwrite it", .0.display())]
    AlreadyExists(PathBuf),
    /// `MAR-INF/MANIFEST.json` is malformed or names files it must not.
    #[error("invalid manifest in `{}`: {reason}", path.display())]
    InvalidManifest {
        /// The model source the manifest came from.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An archive entry (or a file about to become one) is refused for safety.
    #[error("refusing archive entry `{entry}`: {reason}")]
    UnsafeEntry {
        /// The entry's name as stored in the archive.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// The archive exceeds one of the [`UnpackLimits`].
    #[error("archive too large: {reason}")]
    TooLarge {
        /// Which limit was hit.
        reason: String,
    },
    /// No manifest and no `.onnx` file at the root to serve.
    #[error(
        "no MAR-INF/MANIFEST.json and no `.onnx` file at the root of `{}`",
        .0.display()
    )]
    NoModelFile(PathBuf),
    /// No manifest and several `.onnx` files at the root, so the model file is unclear.
    #[error(
        "no MAR-INF/MANIFEST.json and several `.onnx` files at the root of `{}` ({}); add a manifest naming the serialized file",
        path.display(),
        candidates.join(", ")
    )]
    AmbiguousModelFile {
        /// The model source.
        path: PathBuf,
        /// The `.onnx` files found.
        candidates: Vec<String>,
    },
    /// The model name has characters torch-model-archiver does not allow.
    #[error(
        "invalid model name `{0}`: use letters, digits, `_`, `-` and `.` only, starting with a letter or digit"
    )]
    InvalidName(String),
    /// A packing option is invalid.
    #[error("{0}")]
    InvalidOption(String),
    /// Two different files would land on the same name inside the archive.
    #[error("two different files would be stored as `{0}` in the archive")]
    DuplicateEntry(String),
    /// The source is not a zip, a gzip'd tar, a folder or an `.onnx` file.
    #[error(
        "`{}` is not a model archive: expected a zip (.mar), a .tar.gz, a folder or an .onnx file",
        .0.display()
    )]
    UnsupportedFormat(PathBuf),
    /// The zip structure could not be read or written.
    #[error("malformed zip archive")]
    Zip(#[from] zip::result::ZipError),
}

impl ArchiveError {
    /// The same error with its paths written relative to the first of `dirs` that holds them
    /// (a path equal to one is `.`), for answers that leave the server.
    #[must_use]
    pub fn relative_to(self, dirs: &[&Path]) -> Self {
        let rel = |path: PathBuf| {
            dirs.iter().find_map(|dir| path.strip_prefix(dir).ok()).map_or_else(
                || path.clone(),
                |r| if r.as_os_str().is_empty() { PathBuf::from(".") } else { r.to_path_buf() },
            )
        };
        match self {
            Self::Io { path, source } => Self::Io { path: rel(path), source },
            Self::NotFound(path) => Self::NotFound(rel(path)),
            Self::AlreadyExists(path) => Self::AlreadyExists(rel(path)),
            Self::InvalidManifest { path, reason } => {
                Self::InvalidManifest { path: rel(path), reason }
            }
            Self::NoModelFile(path) => Self::NoModelFile(rel(path)),
            Self::AmbiguousModelFile { path, candidates } => {
                Self::AmbiguousModelFile { path: rel(path), candidates }
            }
            Self::UnsupportedFormat(path) => Self::UnsupportedFormat(rel(path)),
            other => other,
        }
    }
}

/// Caps applied while unpacking, so a hostile archive cannot fill the disk or exhaust memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Most entries (files and folders) an archive may hold. Default 10,000.
    pub max_entries: usize,
    /// Most bytes an archive may decompress to, counted as they are written. Default 4 GiB.
    pub max_total_bytes: u64,
    /// Most times larger than its compressed file an archive may decompress to. Default 200.
    /// The first [`UnpackLimits::RATIO_GRACE_BYTES`] are exempt, so tiny archives of very
    /// compressible files still open.
    pub max_ratio: u64,
    /// Folder that holds extraction staging folders; the system temp folder when `None`. Put it
    /// on the same file system as the model store for cheap renames.
    pub staging_dir: Option<PathBuf>,
}

impl UnpackLimits {
    /// Decompressed bytes exempt from the ratio check.
    pub const RATIO_GRACE_BYTES: u64 = 1024 * 1024;
}

impl Default for UnpackLimits {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_total_bytes: 4 * 1024 * 1024 * 1024,
            max_ratio: 200,
            staging_dir: None,
        }
    }
}

/// Checks a model name against torch-model-archiver's rule `^[A-Za-z0-9][A-Za-z0-9_\-.]*$`,
/// which also keeps path separators and `..` out of output file names and URLs.
///
/// # Errors
///
/// [`ArchiveError::InvalidName`] when the name breaks the rule.
pub fn validate_model_name(name: &str) -> Result<(), ArchiveError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if first_ok && rest_ok { Ok(()) } else { Err(ArchiveError::InvalidName(name.to_owned())) }
}

/// Checks that `raw` (a `/`-separated archive entry or manifest path) is a plain relative path
/// that stays inside the folder it is joined to, and returns it normalised (`.` components and
/// repeated or trailing `/` dropped). The check is per component, never a string prefix test.
pub(crate) fn safe_relative_path(raw: &str) -> Result<PathBuf, &'static str> {
    if raw.contains('\0') {
        return Err("contains a NUL byte");
    }
    if raw.contains('\\') {
        return Err("contains a backslash (a Windows path separator)");
    }
    if raw.starts_with('/') {
        return Err("is an absolute path");
    }
    let mut out = PathBuf::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("has a `..` component"),
            _ if part.contains(':') => return Err("contains `:` (a drive or stream prefix)"),
            _ => out.push(part),
        }
    }
    if out.as_os_str().is_empty() {
        return Err("is empty");
    }
    Ok(out)
}

/// Builds a closure mapping an [`io::Error`] to [`ArchiveError::Io`] for `path`.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io { path: path.to_path_buf(), source }
}

/// Helpers shared by the archive tests.
#[cfg(test)]
pub(crate) mod test_support {
    use std::fs;
    use std::io::{Cursor, Write};
    use std::path::Path;

    use tempfile::TempDir;
    use zip::write::SimpleFileOptions;

    use super::{ArchiveFormat, PackOptions, UnpackLimits};

    /// Dummy weights; unpacking never parses them.
    pub(crate) const WEIGHTS: &[u8] = b"\x08\x07not really onnx";

    /// A source folder with a dummy model, config, handler and extras, and options packing it.
    pub(crate) fn fixture(
        format: ArchiveFormat,
    ) -> Result<(TempDir, PackOptions), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let src = tmp.path().join("src");
        fs::create_dir_all(src.join("vocab/sub/__pycache__"))?;
        fs::create_dir_all(src.join("vocab/.git"))?;
        fs::write(src.join("model.onnx"), WEIGHTS)?;
        fs::write(src.join("model-config.yaml"), "batchSize: 4\n")?;
        fs::write(src.join("requirements.txt"), "numpy\n")?;
        fs::write(src.join("my_handler.py"), "def handle(data, ctx): pass\n")?;
        fs::write(src.join("index_to_name.json"), r#"{"0": "cat"}"#)?;
        fs::write(src.join("vocab/words.txt"), "a\nb\n")?;
        fs::write(src.join("vocab/sub/deep.txt"), "deep")?;
        fs::write(src.join("vocab/sub/__pycache__/x.pyc"), "skip")?;
        fs::write(src.join("vocab/.git/HEAD"), "skip")?;
        fs::create_dir(tmp.path().join("out"))?;
        let opts = PackOptions {
            version: "2.0".to_owned(),
            handler: Some(format!("{}:handle", src.join("my_handler.py").display())),
            extra_files: vec![src.join("index_to_name.json"), src.join("vocab")],
            config_file: Some(src.join("model-config.yaml")),
            requirements_file: Some(src.join("requirements.txt")),
            export_path: tmp.path().join("out"),
            format,
            ..PackOptions::new("toy", src.join("model.onnx"))
        };
        Ok((tmp, opts))
    }

    /// Result type for tests that use `?`.
    pub(crate) type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// Default limits with extraction staged under `staging`.
    pub(crate) fn limits(staging: &Path) -> UnpackLimits {
        UnpackLimits { staging_dir: Some(staging.to_path_buf()), ..UnpackLimits::default() }
    }

    /// A zip holding `entries` (name, bytes), deflated.
    pub(crate) fn zip_bytes(
        entries: &[(&str, &[u8])],
    ) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, bytes) in entries {
            zip.start_file(*name, SimpleFileOptions::default())?;
            zip.write_all(bytes)?;
        }
        Ok(zip.finish()?.into_inner())
    }

    /// Asserts that `dir` holds nothing (or does not exist).
    pub(crate) fn assert_empty(dir: &Path) {
        let left: Vec<_> = fs::read_dir(dir)
            .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left behind in {}: {left:?}", dir.display());
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::test_support::{TestResult, WEIGHTS, assert_empty, fixture, limits};
    use super::*;

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn round_trip(format: ArchiveFormat, output: &str, kind: SourceKind) -> TestResult {
        let (tmp, opts) = fixture(format)?;
        let written = pack(&opts)?;
        assert_eq!(written, opts.export_path.join(output));
        // Only the output: no temporary files left in the export folder.
        let listing: Vec<_> = fs::read_dir(&opts.export_path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        assert_eq!(listing, [output]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&written)?.permissions().mode() & 0o777;
            assert_eq!(mode, if written.is_dir() { 0o755 } else { 0o644 });
        }

        let staging = tmp.path().join("staging");
        fs::create_dir(&staging)?;
        let model = unpack(&written, &limits(&staging))?;
        assert_eq!(model.kind(), kind);
        let m = &model.manifest.model;
        assert_eq!(m.model_name, "toy");
        assert_eq!(m.model_version.as_deref(), Some("2.0"));
        assert_eq!(m.serialized_file.as_deref(), Some("model.onnx"));
        assert_eq!(m.handler.as_deref(), Some("my_handler.py:handle"));
        assert_eq!(m.config_file.as_deref(), Some("model-config.yaml"));
        assert_eq!(m.requirements_file.as_deref(), Some("requirements.txt"));
        assert_eq!(model.manifest.runtime.as_deref(), Some("python"));
        assert_eq!(model.manifest.archiver_version.as_deref(), Some("0.12.0"));
        let weights = model.serialized_file().ok_or("no serialized file")?;
        assert_eq!(fs::read(weights)?, WEIGHTS);
        let config = model.config_file().ok_or("no config file")?;
        assert_eq!(read(&config), "batchSize: 4\n");
        for name in ["index_to_name.json", "words.txt", "sub/deep.txt", "my_handler.py"] {
            assert!(model.file(name).is_some(), "{name} missing");
        }
        for name in ["vocab", "sub/__pycache__/x.pyc", ".git/HEAD", "../src/model.onnx"] {
            assert!(model.file(name).is_none(), "{name} should not be there");
        }
        let extracted = kind != SourceKind::Directory;
        assert_eq!(model.dir.starts_with(fs::canonicalize(&staging)?), extracted);
        drop(model);
        assert_empty(&staging);
        Ok(())
    }

    #[test]
    fn round_trip_default() -> TestResult {
        round_trip(ArchiveFormat::Default, "toy.mar", SourceKind::Zip)
    }

    #[test]
    fn round_trip_zip_store() -> TestResult {
        round_trip(ArchiveFormat::ZipStore, "toy.mar", SourceKind::Zip)
    }

    #[test]
    fn round_trip_tgz() -> TestResult {
        round_trip(ArchiveFormat::Tgz, "toy.tar.gz", SourceKind::Tgz)
    }

    #[test]
    fn round_trip_no_archive() -> TestResult {
        round_trip(ArchiveFormat::NoArchive, "toy", SourceKind::Directory)
    }

    #[test]
    fn model_names_follow_torch_model_archiver() {
        for ok in ["resnet", "resnet-18", "a.b_c", "9lives", "X"] {
            assert!(validate_model_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".hidden", "..", "a/b", "a\\b", "-x", "a b", "é", "_x", "a:b"] {
            assert!(matches!(validate_model_name(bad), Err(ArchiveError::InvalidName(_))), "{bad}");
        }
    }

    #[test]
    fn safe_relative_path_accepts_plain_paths() {
        assert_eq!(safe_relative_path("model.onnx"), Ok(PathBuf::from("model.onnx")));
        assert_eq!(safe_relative_path("./a//b/"), Ok(PathBuf::from("a").join("b")));
        assert_eq!(
            safe_relative_path("MAR-INF/MANIFEST.json"),
            Ok(PathBuf::from("MAR-INF").join("MANIFEST.json"))
        );
        assert_eq!(safe_relative_path("..a"), Ok(PathBuf::from("..a")));
    }

    #[test]
    fn safe_relative_path_refuses_escapes() {
        for bad in [
            "",
            ".",
            "./",
            "..",
            "../evil",
            "a/../../evil",
            "a/..",
            "/etc/passwd",
            "//server/share",
            "..\\evil",
            "C:\\evil",
            "C:/evil",
            "a\0b",
        ] {
            assert!(safe_relative_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn error_messages_are_lowercase_without_trailing_period() {
        let errors = [
            ArchiveError::NotFound(PathBuf::from("x.onnx")),
            ArchiveError::AlreadyExists(PathBuf::from("x.mar")),
            ArchiveError::InvalidName("a/b".to_owned()),
            ArchiveError::TooLarge { reason: "too many entries".to_owned() },
            ArchiveError::NoModelFile(PathBuf::from("dir")),
        ];
        for err in errors {
            let msg = err.to_string();
            assert!(msg.chars().next().is_some_and(|c| !c.is_uppercase()), "{msg}");
            assert!(!msg.ends_with('.'), "{msg}");
        }
        assert!(
            ArchiveError::AlreadyExists(PathBuf::from("x.mar")).to_string().contains("--force")
        );
    }
}
