//! Finding `libonnxruntime` and loading it once per process.
//!
//! The `ort` crate is built with `load-dynamic`: nothing from ONNX Runtime is linked at build time, so
//! the shared library has to be found and `dlopen`ed at run time. A process can hold only one ONNX
//! Runtime library (the `ort` crate keeps it in a global), so the first successful load wins and a later
//! request for a different file is refused with [`OrtSetupError::AlreadyLoaded`] instead of being
//! silently ignored.
//!
//! Everything that can go wrong here is an ordinary `Err` with a message that says what to do: the
//! file is checked (exists, has a shared-library header) before `ort` touches it, and `ort`'s own load
//! errors (not ONNX Runtime, too old) are translated.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use ort::environment::Environment;

/// The oldest ONNX Runtime release this build accepts: `ort` 2.0.0-rc.15 uses C API version 31.
pub const MIN_ONNXRUNTIME: &str = "1.31";

/// What every "not found / not usable" message ends with.
const HINT: &str = "run `bash scripts/install-onnxruntime.sh` (installs onnxruntime 1.32 into \
                    .venv-ort, found automatically) or set ORT_DYLIB_PATH to a libonnxruntime \
                    shared library, version 1.31 or newer";

/// How long the `python3 -c "import onnxruntime"` probe may take before it is abandoned.
const PYTHON_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the ONNX Runtime backend could not be set up. Every message tells the user what to do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrtSetupError {
    /// No library was configured and the automatic search found none.
    #[error("ONNX Runtime library not found (searched {searched}); {HINT}")]
    NotFound {
        /// The places that were searched, as text.
        searched: String,
    },
    /// A configured path (backend config or `ORT_DYLIB_PATH`) names no file.
    #[error("ONNX Runtime library {path} (from {origin}) does not exist; fix the path or {HINT}")]
    Missing {
        /// The configured path.
        path: PathBuf,
        /// Where the path came from.
        origin: &'static str,
    },
    /// The file is not a shared library for this platform (checked before loading it).
    #[error(
        "{path} is not a shared library ({reason}); expected libonnxruntime.so.<version>; {HINT}"
    )]
    NotALibrary {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// The dynamic loader refused the file (wrong architecture, missing dependencies, …).
    #[error("cannot load {path}: {reason}; {HINT}")]
    LoadFailed {
        /// The file.
        path: PathBuf,
        /// The loader's message.
        reason: String,
    },
    /// A shared library, but not ONNX Runtime (no usable `OrtGetApiBase`).
    #[error("{path} is a shared library but not ONNX Runtime ({reason}); {HINT}")]
    NotOnnxRuntime {
        /// The file.
        path: PathBuf,
        /// What was missing.
        reason: String,
    },
    /// ONNX Runtime older than [`MIN_ONNXRUNTIME`].
    #[error("{path} is ONNX Runtime {found}, but oxserve needs {MIN_ONNXRUNTIME} or newer; {HINT}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version the library reports.
        found: String,
    },
    /// This process already loaded ONNX Runtime from another file; only one can be loaded.
    #[error(
        "ONNX Runtime is already loaded from {loaded} in this process and cannot also be loaded \
         from {requested}; configure one library per process"
    )]
    AlreadyLoaded {
        /// The library in use.
        loaded: PathBuf,
        /// The library that was asked for.
        requested: PathBuf,
    },
    /// The library loaded but refused to create its environment.
    #[error("ONNX Runtime loaded from {path} but could not create its environment: {source}")]
    Environment {
        /// The library.
        path: PathBuf,
        /// ONNX Runtime's error.
        #[source]
        source: ort::Error,
    },
}

/// Finds the ONNX Runtime shared library.
///
/// In order: `explicit` (the backend config), the `ORT_DYLIB_PATH` environment variable, a `.venv-ort`
/// virtualenv made by `scripts/install-onnxruntime.sh` (looked for in the current directory and its
/// parents, then in this workspace's root), and finally the `onnxruntime` / `onnxruntime-gpu` Python
/// package that `python3` can import. A configured path that does not exist is an error rather than a
/// reason to keep searching, so a typo never silently picks another library.
///
/// # Errors
/// [`OrtSetupError::Missing`] for a configured path that does not exist, [`OrtSetupError::NotFound`]
/// when the search finds nothing.
pub fn find_library(explicit: Option<&Path>) -> Result<PathBuf, OrtSetupError> {
    if let Some(path) = explicit {
        return existing(path, "the backend configuration");
    }
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
        return existing(Path::new(&path), "ORT_DYLIB_PATH");
    }
    let mut searched = Vec::new();
    for root in venv_roots() {
        let venv = root.join(".venv-ort");
        if let Some(lib) = library_in_venv(&venv) {
            return Ok(lib);
        }
        searched.push(venv.display().to_string());
    }
    match python_package_dir() {
        Some(dir) => {
            let capi = dir.join("capi");
            if let Some(lib) = newest_library_in(&capi) {
                return Ok(lib);
            }
            searched.push(capi.display().to_string());
        }
        None => searched.push("the `onnxruntime` Python package (python3 cannot import it)".into()),
    }
    Err(OrtSetupError::NotFound { searched: searched.join(", ") })
}

fn existing(path: &Path, origin: &'static str) -> Result<PathBuf, OrtSetupError> {
    if path.exists() {
        Ok(path.to_path_buf())
    } else {
        Err(OrtSetupError::Missing { path: path.to_path_buf(), origin })
    }
}

/// Folders that may hold `.venv-ort`: the working directory and its parents (a binary run from
/// anywhere inside the repository), then the workspace this crate was built in (tests, `cargo run`).
fn venv_roots() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if let Ok(workspace) = workspace.canonicalize()
        && !roots.contains(&workspace)
    {
        roots.push(workspace);
    }
    roots
}

/// `<venv>/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*` (or Windows' `Lib/`).
fn library_in_venv(venv: &Path) -> Option<PathBuf> {
    let mut site_packages = vec![venv.join("Lib").join("site-packages")];
    if let Ok(entries) = std::fs::read_dir(venv.join("lib")) {
        let mut pythons: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
            .map(|e| e.path().join("site-packages"))
            .collect();
        pythons.sort();
        site_packages.splice(0..0, pythons);
    }
    site_packages.iter().find_map(|sp| newest_library_in(&sp.join("onnxruntime").join("capi")))
}

/// The main ONNX Runtime library in `dir` (not a `_providers_*` plug-in), the highest version first.
fn newest_library_in(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| is_main_library(&e.file_name()))
        .map(|e| e.path())
        .max_by_key(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            (version_key(&name), name)
        })
}

/// `libonnxruntime.so`, `libonnxruntime.so.1.32.0`, `libonnxruntime.1.32.0.dylib`, `onnxruntime.dll`.
fn is_main_library(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    let stem = format!("{}onnxruntime", std::env::consts::DLL_PREFIX);
    name.strip_prefix(&stem)
        .is_some_and(|rest| rest.starts_with('.') && rest.contains(std::env::consts::DLL_SUFFIX))
}

/// The numbers in a file name, so that `1.10.0` sorts after `1.9.0`.
fn version_key(name: &str) -> Vec<u32> {
    name.split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse().ok()).collect()
}

/// Asks `python3` where its `onnxruntime` package lives. Any failure (no Python, no package, too slow)
/// just means "not found here".
fn python_package_dir() -> Option<PathBuf> {
    let mut child = Command::new("python3")
        .args(["-c", "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + PYTHON_PROBE_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(Some(_)) => return None,
            _ => {
                // Too slow or not waitable: stop it so no zombie is left behind.
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut out = String::new();
    child.stdout.take()?.read_to_string(&mut out).ok()?;
    let dir = out.trim();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// Checks that `path` is a regular file with this platform's shared-library header, so that an obvious
/// mistake (a text file, a folder) gets a clear message and never reaches the dynamic loader.
pub(crate) fn check_library_file(path: &Path) -> Result<(), OrtSetupError> {
    let not_a_library =
        |reason: String| OrtSetupError::NotALibrary { path: path.to_path_buf(), reason };
    let meta = std::fs::metadata(path).map_err(|_| OrtSetupError::Missing {
        path: path.to_path_buf(),
        origin: "the library search",
    })?;
    if !meta.is_file() {
        return Err(not_a_library("it is not a regular file".into()));
    }
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map_err(|e| not_a_library(format!("cannot read its header: {e}")))?;
    if has_library_header(magic) {
        Ok(())
    } else {
        Err(not_a_library(format!(
            "it starts with \"{}\", not the {LIBRARY_FORMAT} signature",
            magic.escape_ascii()
        )))
    }
}

#[cfg(windows)]
const LIBRARY_FORMAT: &str = "PE (DLL)";
#[cfg(target_vendor = "apple")]
const LIBRARY_FORMAT: &str = "Mach-O";
#[cfg(not(any(windows, target_vendor = "apple")))]
const LIBRARY_FORMAT: &str = "ELF";

fn has_library_header(magic: [u8; 4]) -> bool {
    if cfg!(windows) {
        magic.starts_with(b"MZ")
    } else if cfg!(target_vendor = "apple") {
        matches!(
            u32::from_be_bytes(magic),
            0xFEED_FACE | 0xFEED_FACF | 0xCEFA_EDFE | 0xCFFA_EDFE | 0xCAFE_BABE | 0xBEBA_FECA
        )
    } else {
        magic == *b"\x7fELF"
    }
}

/// The library this process loaded and the environment made from it.
struct Loaded {
    path: PathBuf,
    env: Environment,
}

/// Only touched while a backend is being created, never while running models.
static LOADED: Mutex<Option<Loaded>> = Mutex::new(None);

/// Loads ONNX Runtime from `path` (once per process) and returns the canonical path and the shared
/// environment. A second call with the same file reuses the first load.
pub(crate) fn environment(path: &Path) -> Result<(PathBuf, Environment), OrtSetupError> {
    check_library_file(path)?;
    let canonical = path
        .canonicalize()
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf());
    let mut loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(done) = loaded.as_ref() {
        if done.path == canonical {
            return Ok((canonical, done.env.clone()));
        }
        return Err(OrtSetupError::AlreadyLoaded {
            loaded: done.path.clone(),
            requested: canonical,
        });
    }
    let builder = ort::init_from(&canonical).map_err(|e| translate(e, &canonical))?;
    let env = builder
        .with_name("oxserve")
        .build()
        .map_err(|source| OrtSetupError::Environment { path: canonical.clone(), source })?;
    tracing::info!(library = %canonical.display(), "loaded ONNX Runtime");
    *loaded = Some(Loaded { path: canonical.clone(), env: env.clone() });
    Ok((canonical, env))
}

fn translate(e: ort::LoadDynamicError, path: &Path) -> OrtSetupError {
    let path = path.to_path_buf();
    match e {
        ort::LoadDynamicError::Dlopen { error, .. } => {
            OrtSetupError::LoadFailed { path, reason: error.to_string() }
        }
        ort::LoadDynamicError::MissingApi { .. } => {
            OrtSetupError::NotOnnxRuntime { path, reason: "it exports no `OrtGetApiBase`".into() }
        }
        ort::LoadDynamicError::InvalidVersionString => OrtSetupError::NotOnnxRuntime {
            path,
            reason: "it reports a malformed version string".into(),
        },
        ort::LoadDynamicError::BadVersion { version_str, .. } => {
            OrtSetupError::UnsupportedVersion { path, found: version_str }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_library_names() {
        let yes = ["libonnxruntime.so", "libonnxruntime.so.1.32.0"];
        let no = ["libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so", "x.so"];
        if cfg!(target_os = "linux") {
            assert!(yes.iter().all(|n| is_main_library(OsStr::new(n))));
            assert!(!no.iter().any(|n| is_main_library(OsStr::new(n))));
        }
    }

    #[test]
    fn versions_sort_numerically() {
        assert!(version_key("libonnxruntime.so.1.10.0") > version_key("libonnxruntime.so.1.9.2"));
        assert!(version_key("libonnxruntime.so.1.32.0") > version_key("libonnxruntime.so"));
    }

    #[test]
    fn headers() {
        let native = if cfg!(windows) {
            *b"MZ\x90\0"
        } else if cfg!(target_vendor = "apple") {
            [0xCF, 0xFA, 0xED, 0xFE]
        } else {
            *b"\x7fELF"
        };
        assert!(has_library_header(native));
        assert!(!has_library_header(*b"hell"));
    }
}
