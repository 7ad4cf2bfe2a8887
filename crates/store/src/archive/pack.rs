//! Writing model archives, as `torch-model-archiver` does.
//!
//! Every file goes at the archive root under its file name (the contents of extra folders are
//! merged into the root, as torch-model-archiver does), next to a fresh `MAR-INF/MANIFEST.json`.
//! The archive is written to a temporary file in the export folder and renamed into place at the
//! end, so a failed pack never leaves a half-written archive behind.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use zip::CompressionMethod;
use zip::write::SimpleFileOptions;

use super::manifest::{DEFAULT_RUNTIME, DEFAULT_VERSION, MANIFEST_PATH, split_handler};
use super::{
    ArchiveError, Manifest, ManifestModel, io_err, safe_relative_path, validate_model_name,
};

/// Folders skipped when copying an extra folder, as torch-model-archiver skips them (hidden
/// folders are skipped too).
const SKIPPED_DIRS: [&str; 2] = ["__pycache__", "__MACOSX"];
/// Deepest folder nesting followed when copying extra folders; guards against symlink loops.
const MAX_DEPTH: usize = 32;

/// The output layouts of `--archive-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// A deflate-compressed zip: `<name>.mar`.
    #[default]
    Default,
    /// A gzip'd tar with everything under `<name>/`: `<name>.tar.gz`.
    Tgz,
    /// A plain folder: `<name>/`.
    NoArchive,
    /// An uncompressed zip, quicker to open for already-compressed weights: `<name>.mar`.
    ZipStore,
}

impl ArchiveFormat {
    /// What [`pack`] appends to the model name to make the output's file name.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Default | Self::ZipStore => ".mar",
            Self::Tgz => ".tar.gz",
            Self::NoArchive => "",
        }
    }
}

/// What to pack; mirrors torch-model-archiver's flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackOptions {
    /// The model name; also the output's file name. See [`super::validate_model_name`].
    pub model_name: String,
    /// The model version written as `modelVersion`.
    pub version: String,
    /// The weights file, e.g. `model.onnx`; `None` for a Python handler that loads (or needs)
    /// nothing but its own files, which torch-model-archiver allows too.
    pub serialized_file: Option<PathBuf>,
    /// A handler name, stored as given, or a path to a `.py` file (optionally `file.py:fn`),
    /// which is copied in and stored by its file name. `None` leaves `handler` out.
    pub handler: Option<String>,
    /// A Python model definition, copied in.
    pub model_file: Option<PathBuf>,
    /// Extra files, copied in; folders have their contents copied recursively into the root.
    pub extra_files: Vec<PathBuf>,
    /// A `model-config.yaml`, copied in.
    pub config_file: Option<PathBuf>,
    /// A pip requirements file, copied in.
    pub requirements_file: Option<PathBuf>,
    /// The manifest's `runtime`.
    pub runtime: String,
    /// The existing folder the archive is written to.
    pub export_path: PathBuf,
    /// The output layout.
    pub format: ArchiveFormat,
    /// Overwrite an existing output.
    pub force: bool,
}

impl PackOptions {
    /// Options with torch-model-archiver's defaults: version `1.0`, runtime `python`, export to
    /// the current folder as a `.mar`, no handler or extra files, no overwriting.
    pub fn new(model_name: impl Into<String>, serialized_file: impl Into<PathBuf>) -> Self {
        Self {
            model_name: model_name.into(),
            version: DEFAULT_VERSION.to_owned(),
            serialized_file: Some(serialized_file.into()),
            handler: None,
            model_file: None,
            extra_files: Vec::new(),
            config_file: None,
            requirements_file: None,
            runtime: DEFAULT_RUNTIME.to_owned(),
            export_path: PathBuf::from("."),
            format: ArchiveFormat::Default,
            force: false,
        }
    }
}

/// Packs a model and returns the path written: `<export>/<name>.mar`, `<name>.tar.gz` or
/// `<name>/` depending on the format.
///
/// # Errors
///
/// [`ArchiveError::InvalidName`] for a bad model name, [`ArchiveError::NotFound`] for missing
/// inputs or export folder, [`ArchiveError::AlreadyExists`] when the output exists and
/// `force` is off, [`ArchiveError::DuplicateEntry`] when two inputs share a file name,
/// [`ArchiveError::UnsafeEntry`] for file names that could not be unpacked safely, and
/// [`ArchiveError::Io`] / [`ArchiveError::Zip`] when writing fails.
pub fn pack(opts: &PackOptions) -> Result<PathBuf, ArchiveError> {
    validate_model_name(&opts.model_name)?;
    for (what, value) in [("model version", &opts.version), ("runtime", &opts.runtime)] {
        if value.trim().is_empty() {
            return Err(ArchiveError::InvalidOption(format!("the {what} must not be empty")));
        }
    }
    let export = &opts.export_path;
    match fs::metadata(export) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(ArchiveError::InvalidOption(format!(
                "export path `{}` is not a folder",
                export.display()
            )));
        }
        Err(_) => return Err(ArchiveError::NotFound(export.clone())),
    }
    let target = export.join(format!("{}{}", opts.model_name, opts.format.suffix()));
    if fs::symlink_metadata(&target).is_ok() && !opts.force {
        return Err(ArchiveError::AlreadyExists(target));
    }

    if opts.serialized_file.is_none() && opts.handler.is_none() {
        return Err(ArchiveError::InvalidOption(
            "nothing to serve: give a serialized file, a handler, or both".to_owned(),
        ));
    }
    let mut files = Files::default();
    let serialized_file = opts.serialized_file.as_deref().map(|p| files.add_file(p)).transpose()?;
    let model_file = opts.model_file.as_deref().map(|p| files.add_file(p)).transpose()?;
    let config_file = opts.config_file.as_deref().map(|p| files.add_file(p)).transpose()?;
    let requirements_file =
        opts.requirements_file.as_deref().map(|p| files.add_file(p)).transpose()?;
    let handler = opts.handler.as_deref().map(|h| handler_entry(h, &mut files)).transpose()?;
    for extra in &opts.extra_files {
        files.add_extra(extra)?;
    }

    let manifest = Manifest::new(
        ManifestModel {
            model_name: opts.model_name.clone(),
            serialized_file,
            handler,
            model_file,
            model_version: Some(opts.version.clone()),
            requirements_file,
            config_file,
            ..ManifestModel::default()
        },
        opts.runtime.clone(),
    );
    manifest.validate().map_err(ArchiveError::InvalidOption)?;
    let manifest_json = manifest.to_json_pretty();

    match opts.format {
        ArchiveFormat::Default => write_zip(&target, opts, &files, &manifest_json, true)?,
        ArchiveFormat::ZipStore => write_zip(&target, opts, &files, &manifest_json, false)?,
        ArchiveFormat::Tgz => write_tgz(&target, opts, &files, &manifest_json)?,
        ArchiveFormat::NoArchive => write_folder(&target, opts, &files, &manifest_json)?,
    }
    tracing::debug!(path = %target.display(), files = files.0.len(), "packed model archive");
    Ok(target)
}

/// The manifest's `handler` for `handler`: a `.py` file (optionally with `:function`) is added
/// to `files` and stored by its file name; anything else is stored as given.
fn handler_entry(handler: &str, files: &mut Files) -> Result<String, ArchiveError> {
    let (file, function) = split_handler(handler);
    if !file.ends_with(".py") {
        return Ok(handler.to_owned());
    }
    let name = files.add_file(Path::new(file))?;
    Ok(match function {
        Some(function) => format!("{name}:{function}"),
        None => name,
    })
}

/// The files to pack: archive name (`/`-separated) → source path, in name order.
#[derive(Debug, Default)]
struct Files(BTreeMap<String, PathBuf>);

impl Files {
    /// Adds a regular file at the root under its file name and returns that name.
    fn add_file(&mut self, path: &Path) -> Result<String, ArchiveError> {
        let meta = fs::metadata(path).map_err(|_| ArchiveError::NotFound(path.to_path_buf()))?;
        if !meta.is_file() {
            return Err(ArchiveError::InvalidOption(format!("`{}` is not a file", path.display())));
        }
        let name = file_name(path)?;
        self.insert(name.clone(), path)?;
        Ok(name)
    }

    /// Adds an extra file, or the contents of an extra folder, at the root.
    fn add_extra(&mut self, path: &Path) -> Result<(), ArchiveError> {
        let meta = fs::metadata(path).map_err(|_| ArchiveError::NotFound(path.to_path_buf()))?;
        if meta.is_dir() {
            self.add_dir_contents(path, "", 0)
        } else {
            self.add_file(path).map(drop)
        }
    }

    fn add_dir_contents(
        &mut self,
        dir: &Path,
        prefix: &str,
        depth: usize,
    ) -> Result<(), ArchiveError> {
        if depth > MAX_DEPTH {
            return Err(ArchiveError::InvalidOption(format!(
                "`{}` is nested more than {MAX_DEPTH} folders deep (a symlink loop?)",
                dir.display()
            )));
        }
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            let path = entry.map_err(io_err(dir))?.path();
            let base = file_name(&path)?;
            let name = format!("{prefix}{base}");
            let meta = fs::metadata(&path).map_err(io_err(&path))?;
            if meta.is_dir() {
                if base.starts_with('.') || SKIPPED_DIRS.contains(&base.as_str()) {
                    continue;
                }
                self.add_dir_contents(&path, &format!("{name}/"), depth + 1)?;
            } else if name == MANIFEST_PATH {
                // Re-packing an unpacked model: the new manifest replaces the old one.
                tracing::debug!(path = %path.display(), "skipping an old manifest");
            } else {
                self.insert(name, &path)?;
            }
        }
        Ok(())
    }

    fn insert(&mut self, name: String, path: &Path) -> Result<(), ArchiveError> {
        safe_relative_path(&name).map_err(|reason| ArchiveError::UnsafeEntry {
            entry: name.clone(),
            reason: reason.to_owned(),
        })?;
        if name == MANIFEST_PATH {
            return Err(ArchiveError::DuplicateEntry(name));
        }
        match self.0.get(&name) {
            Some(existing) if same_file(existing, path) => Ok(()),
            Some(_) => Err(ArchiveError::DuplicateEntry(name)),
            None => {
                self.0.insert(name, path.to_path_buf());
                Ok(())
            }
        }
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The UTF-8 file name of `path`.
fn file_name(path: &Path) -> Result<String, ArchiveError> {
    path.file_name().and_then(|n| n.to_str()).map(str::to_owned).ok_or_else(|| {
        ArchiveError::UnsafeEntry {
            entry: path.display().to_string(),
            reason: "the file name is missing or not valid UTF-8".to_owned(),
        }
    })
}

/// A temporary file next to the output, renamed over it once complete.
fn temp_file(opts: &PackOptions) -> Result<tempfile::NamedTempFile, ArchiveError> {
    tempfile::Builder::new()
        .prefix(&format!(".{}.", opts.model_name))
        .suffix(".partial")
        .tempfile_in(&opts.export_path)
        .map_err(io_err(&opts.export_path))
}

fn persist(tmp: tempfile::NamedTempFile, target: &Path) -> Result<(), ArchiveError> {
    // Temporary files are created 0600; archives are as readable as torch-model-archiver's.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(io_err(tmp.path()))?;
    }
    tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
    tmp.persist(target).map_err(|e| io_err(target)(e.error))?;
    Ok(())
}

fn write_zip(
    target: &Path,
    opts: &PackOptions,
    files: &Files,
    manifest_json: &str,
    compress: bool,
) -> Result<(), ArchiveError> {
    let tmp = temp_file(opts)?;
    let method = if compress { CompressionMethod::Deflated } else { CompressionMethod::Stored };
    let options = SimpleFileOptions::default().compression_method(method).unix_permissions(0o644);
    let mut zip = zip::ZipWriter::new(BufWriter::new(tmp.as_file()));
    zip.start_file(MANIFEST_PATH, options)?;
    zip.write_all(manifest_json.as_bytes()).map_err(io_err(tmp.path()))?;
    for (name, path) in &files.0 {
        let mut input = File::open(path).map_err(io_err(path))?;
        let len = input.metadata().map_err(io_err(path))?.len();
        zip.start_file(name, options.large_file(len >= u64::from(u32::MAX)))?;
        io::copy(&mut input, &mut zip).map_err(io_err(path))?;
    }
    zip.finish()?.flush().map_err(io_err(tmp.path()))?;
    persist(tmp, target)
}

fn write_tgz(
    target: &Path,
    opts: &PackOptions,
    files: &Files,
    manifest_json: &str,
) -> Result<(), ArchiveError> {
    let tmp = temp_file(opts)?;
    let write_err = io_err(tmp.path());
    let gz = GzEncoder::new(BufWriter::new(tmp.as_file()), Compression::default());
    let mut tar = tar::Builder::new(gz);
    // Fixed owner, mode and mtime: archives depend only on their contents.
    tar.mode(tar::HeaderMode::Deterministic);
    let root = &opts.model_name;
    let mut header = tar::Header::new_gnu();
    header.set_size(manifest_json.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, format!("{root}/{MANIFEST_PATH}"), manifest_json.as_bytes())
        .map_err(io_err(tmp.path()))?;
    for (name, path) in &files.0 {
        let mut input = File::open(path).map_err(io_err(path))?;
        tar.append_file(format!("{root}/{name}"), &mut input).map_err(io_err(path))?;
    }
    let gz = tar.into_inner().map_err(io_err(tmp.path()))?;
    gz.finish().and_then(|mut out| out.flush()).map_err(write_err)?;
    persist(tmp, target)
}

fn write_folder(
    target: &Path,
    opts: &PackOptions,
    files: &Files,
    manifest_json: &str,
) -> Result<(), ArchiveError> {
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", opts.model_name))
        .suffix(".partial")
        .tempdir_in(&opts.export_path)
        .map_err(io_err(&opts.export_path))?;
    let mar_inf = tmp.path().join("MAR-INF");
    fs::create_dir(&mar_inf).map_err(io_err(&mar_inf))?;
    let manifest_path = tmp.path().join(MANIFEST_PATH);
    fs::write(&manifest_path, manifest_json).map_err(io_err(&manifest_path))?;
    for (name, path) in &files.0 {
        let dest = tmp.path().join(name);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        fs::copy(path, &dest).map_err(io_err(path))?;
    }
    // `TempDir` creates 0700 folders; published models are readable like the other formats.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755))
            .map_err(io_err(tmp.path()))?;
    }
    if opts.force {
        remove_existing(target)?;
    }
    fs::rename(tmp.path(), target).map_err(io_err(target))?;
    // Renamed away: nothing left for the guard to clean up.
    let _ = tmp.keep();
    Ok(())
}

fn remove_existing(target: &Path) -> Result<(), ArchiveError> {
    let Ok(meta) = fs::symlink_metadata(target) else {
        return Ok(());
    };
    let removed = if meta.is_dir() { fs::remove_dir_all(target) } else { fs::remove_file(target) };
    removed.map_err(io_err(target))
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::archive::test_support::{TestResult, assert_empty, fixture, limits};
    use crate::archive::unpack;

    #[test]
    fn zip_formats_differ_only_in_compression() -> TestResult {
        for (format, method) in [
            (ArchiveFormat::Default, CompressionMethod::Deflated),
            (ArchiveFormat::ZipStore, CompressionMethod::Stored),
        ] {
            let (_tmp, opts) = fixture(format)?;
            let mut zip = zip::ZipArchive::new(File::open(pack(&opts)?)?)?;
            assert_eq!(zip.by_name("model.onnx")?.compression(), method);
            let mut manifest = String::new();
            zip.by_name(MANIFEST_PATH)?.read_to_string(&mut manifest)?;
            assert!(manifest.contains(r#""modelName": "toy""#), "{manifest}");
        }
        Ok(())
    }

    #[test]
    fn tgz_puts_everything_under_the_model_name() -> TestResult {
        let (_tmp, opts) = fixture(ArchiveFormat::Tgz)?;
        let file = File::open(pack(&opts)?)?;
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut names = Vec::new();
        for entry in tar.entries()? {
            names.push(entry?.path()?.to_string_lossy().into_owned());
        }
        assert!(names.iter().all(|n| n.starts_with("toy/")), "{names:?}");
        assert!(names.contains(&format!("toy/{MANIFEST_PATH}")), "{names:?}");
        Ok(())
    }

    #[test]
    fn refuses_to_overwrite_without_force() -> TestResult {
        for format in [ArchiveFormat::Default, ArchiveFormat::Tgz, ArchiveFormat::NoArchive] {
            let (_tmp, mut opts) = fixture(format)?;
            let written = pack(&opts)?;
            let err = pack(&opts).expect_err("second pack must fail");
            assert!(matches!(&err, ArchiveError::AlreadyExists(p) if p == &written), "{err}");
            assert!(err.to_string().contains("--force"), "{err}");

            opts.force = true;
            opts.version = "3.0".to_owned();
            assert_eq!(pack(&opts)?, written);
            let model = unpack(&written, &limits(&opts.export_path.join("..").join("staging")))?;
            assert_eq!(model.manifest.model.model_version.as_deref(), Some("3.0"));
        }
        Ok(())
    }

    #[test]
    fn builtin_handler_names_are_stored_as_given() -> TestResult {
        let (tmp, mut opts) = fixture(ArchiveFormat::NoArchive)?;
        opts.handler = Some("image_classifier".to_owned());
        let model = unpack(&pack(&opts)?, &limits(tmp.path()))?;
        assert_eq!(model.manifest.model.handler.as_deref(), Some("image_classifier"));
        opts.handler = None;
        opts.force = true;
        let model = unpack(&pack(&opts)?, &limits(tmp.path()))?;
        assert_eq!(model.manifest.model.handler, None);
        Ok(())
    }

    #[test]
    fn refuses_bad_names_and_missing_inputs_without_writing() -> TestResult {
        let (_tmp, opts) = fixture(ArchiveFormat::Default)?;
        for name in ["../evil", "a/b", "", ".hidden"] {
            let bad = PackOptions { model_name: name.to_owned(), ..opts.clone() };
            assert!(matches!(pack(&bad), Err(ArchiveError::InvalidName(_))), "{name}");
        }
        let missing = PackOptions {
            serialized_file: Some(opts.export_path.join("nope.onnx")),
            ..opts.clone()
        };
        assert!(matches!(pack(&missing), Err(ArchiveError::NotFound(_))));
        let missing_extra =
            PackOptions { extra_files: vec![opts.export_path.join("nope.txt")], ..opts.clone() };
        assert!(matches!(pack(&missing_extra), Err(ArchiveError::NotFound(_))));
        let no_export =
            PackOptions { export_path: opts.export_path.join("missing"), ..opts.clone() };
        assert!(matches!(pack(&no_export), Err(ArchiveError::NotFound(_))));
        assert_empty(&opts.export_path);
        Ok(())
    }

    #[test]
    fn refuses_two_files_with_one_name() -> TestResult {
        let (tmp, mut opts) = fixture(ArchiveFormat::Default)?;
        let other = tmp.path().join("other");
        fs::create_dir(&other)?;
        fs::write(other.join("index_to_name.json"), "{}")?;
        // The same file twice is fine...
        opts.extra_files.extend(opts.serialized_file.clone());
        // ...two different files with one name are not.
        opts.extra_files.push(other.join("index_to_name.json"));
        let err = pack(&opts).expect_err("duplicate");
        assert!(
            matches!(&err, ArchiveError::DuplicateEntry(n) if n == "index_to_name.json"),
            "{err}"
        );
        assert_empty(&opts.export_path);
        Ok(())
    }

    #[test]
    fn repacking_an_unpacked_folder_replaces_its_manifest() -> TestResult {
        let (tmp, opts) = fixture(ArchiveFormat::NoArchive)?;
        let first = pack(&opts)?;
        let again = PackOptions {
            model_name: "toy2".to_owned(),
            serialized_file: Some(first.join("model.onnx")),
            extra_files: vec![first.clone()],
            handler: None,
            config_file: None,
            requirements_file: None,
            format: ArchiveFormat::Default,
            ..opts
        };
        let model = unpack(&pack(&again)?, &limits(tmp.path()))?;
        assert_eq!(model.manifest.model.model_name, "toy2");
        assert!(model.file("words.txt").is_some());
        Ok(())
    }
}
