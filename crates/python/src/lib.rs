//! TorchServe's Python workers, driven by oxserve: a model whose handler is Python runs in worker
//! processes that are TorchServe's own (`ts.model_service_worker` from the `torchserve` package),
//! one per pool worker, so every TorchServe handler runs unchanged.
//!
//! oxserve takes the place of TorchServe's Java frontend: it starts each worker with a private Unix
//! socket, an allow-listed environment and its own process group, sends it the model (LOAD) and
//! then batches of raw requests (INFER) in TorchServe's wire format ([`otf`]), and turns each
//! per-request answer into the HTTP answer. Queueing, batching, admission, deadlines, scaling and
//! metrics are the core's, as for any model ([`oxserve_core::hosted`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use oxserve_core::hosted::{HostedExecutor, HostedModel, Runtime};
use oxserve_core::{EngineError, Result};
use oxserve_store::archive::Manifest;

mod executor;
mod otf;
mod process;

use executor::PythonExecutor;
use process::Launch;

/// TorchServe's default handlers, which `ts.torch_handler` provides by name.
const DEFAULT_HANDLERS: &[&str] = &[
    "base_handler",
    "image_classifier",
    "image_segmenter",
    "object_detector",
    "text_classifier",
    "dali_image_classifier",
];

/// Settings of the Python worker runtime (TorchServe's config keys where it has them).
#[derive(Debug, Clone)]
pub struct PythonSettings {
    /// The interpreter (`python`); it must be able to import `ts`, unless `model_server_home`
    /// says where `ts` is.
    pub python: PathBuf,
    /// The folder holding the `ts` package (`model_server_home`); found from the interpreter
    /// when unset.
    pub ts_home: Option<PathBuf>,
    /// Largest answer body a worker may send (`max_response_size`).
    pub max_response_size: usize,
    /// How long a worker may take to start and load its model (TorchServe's default 120 s).
    pub startup_timeout: Duration,
    /// `metrics_config`: the metrics file the workers are given (`--metrics-config`); unset:
    /// TorchServe's own `ts/configs/metrics.yaml`.
    pub metrics_config: Option<PathBuf>,
    /// `install_py_dep_per_model`: at load, `pip install` a model's `requirementsFile` into its
    /// folder (code from the archive and the network at registration, so off unless asked).
    pub install_dependencies: bool,
    /// `service_envelope`: the request envelope every model's handler is wrapped in (`kserve`,
    /// `kservev2`, `json`), as KServe's TorchServe runtime configures it; it wins over an
    /// archive's own. Unset: the archive's, else none.
    pub envelope: Option<String>,
}

impl Default for PythonSettings {
    fn default() -> Self {
        Self {
            python: PathBuf::from("python3"),
            ts_home: None,
            max_response_size: 6_553_500,
            startup_timeout: Duration::from_secs(120),
            metrics_config: None,
            install_dependencies: false,
            envelope: None,
        }
    }
}

/// The `python` runtime.
#[derive(Debug)]
pub struct PythonRuntime {
    settings: PythonSettings,
    /// The private folder for sockets and the launcher, made at the first Python model.
    home: OnceLock<std::result::Result<Home, String>>,
}

#[derive(Debug)]
struct Home {
    dir: tempfile::TempDir,
    launcher: PathBuf,
    ts_home: PathBuf,
}

impl PythonRuntime {
    /// A runtime with these settings; nothing is checked until a Python model is loaded. A
    /// relative interpreter path (`.venv/bin/python`) is taken from the server's working folder,
    /// not the model folder the worker runs in; a bare name (`python3`) is looked up on `PATH`.
    pub fn new(mut settings: PythonSettings) -> Self {
        if settings.python.components().count() > 1
            && let Ok(absolute) = std::path::absolute(&settings.python)
        {
            settings.python = absolute;
        }
        for path in
            [settings.ts_home.as_mut(), settings.metrics_config.as_mut()].into_iter().flatten()
        {
            if let Ok(absolute) = std::path::absolute(&*path) {
                *path = absolute;
            }
        }
        Self { settings, home: OnceLock::new() }
    }

    fn home(&self) -> Result<&Home> {
        self.home
            .get_or_init(|| {
                let ts_home = match &self.settings.ts_home {
                    Some(dir) => dir.clone(),
                    None => find_ts_home(&self.settings.python)?,
                };
                if !ts_home.join("ts/model_service_worker.py").is_file() {
                    return Err(format!(
                        "{} holds no TorchServe worker (ts/model_service_worker.py)",
                        ts_home.display()
                    ));
                }
                // tempfile makes the folder 0700: only this user can reach the sockets.
                let dir = tempfile::Builder::new()
                    .prefix("oxserve-python-")
                    .tempdir()
                    .map_err(|e| format!("cannot make a private folder for worker sockets: {e}"))?;
                let launcher = dir.path().join("launcher.py");
                std::fs::write(&launcher, include_str!("launcher.py"))
                    .map_err(|e| format!("cannot write the worker launcher: {e}"))?;
                Ok(Home { dir, launcher, ts_home })
            })
            .as_ref()
            .map_err(|e| EngineError::Load(e.clone()))
    }
}

impl Runtime for PythonRuntime {
    fn name(&self) -> &'static str {
        "python"
    }

    fn claims(&self, model: &HostedModel<'_>) -> bool {
        is_python_model(model.manifest, model.dir)
    }

    fn prepare(&self, model: &HostedModel<'_>) -> Result<Arc<HostedExecutor>> {
        let home = self.home().map_err(|e| match e {
            EngineError::Load(reason) => EngineError::Load(format!(
                "model {} has a Python handler, but the Python worker runtime is not available: \
                 {reason} (run scripts/install-python-worker.sh, or set `python` or \
                 `model_server_home`)",
                model.name
            )),
            other => other,
        })?;
        // The worker runs in the model folder and is told where it is: both must be absolute
        // when the model store was given relative to the server's folder.
        let model_dir = std::path::absolute(model.dir).map_err(|e| {
            EngineError::Load(format!("model {}: cannot resolve its folder: {e}", model.name))
        })?;
        // useVenv: the model's own venv, made once in its folder; its interpreter runs the workers.
        let venv = model.settings.use_venv.then(|| model_dir.join("venv"));
        if let Some(venv) = &venv {
            self.make_venv(model.name, &model_dir, venv, &home.ts_home)?;
        }
        let python =
            venv.as_ref().map_or_else(|| self.settings.python.clone(), |v| v.join("bin/python"));
        if self.settings.install_dependencies
            && let Some(requirements) = model.manifest.model.requirements_file.as_deref()
        {
            self.install_requirements(
                model.name,
                &model_dir,
                requirements,
                venv.is_some().then_some(&python),
            )?;
        }
        let handler = model.manifest.model.handler.clone().unwrap_or_default();
        let mut python_path = Vec::new();
        // A `folder/module:function` handler imports from its folder (inside the model folder).
        if let Some((file, _)) = handler.rsplit_once(':')
            && let Some(parent) = Path::new(file).parent().filter(|p| !p.as_os_str().is_empty())
        {
            python_path.push(model_dir.join(parent));
        }
        let launch = Launch {
            model: model.name.to_owned(),
            python,
            ts_home: home.ts_home.clone(),
            metrics_config: self
                .settings
                .metrics_config
                .clone()
                .unwrap_or_else(|| home.ts_home.join("ts/configs/metrics.yaml")),
            launcher: home.launcher.clone(),
            socket_dir: home.dir.path().to_path_buf(),
            model_dir,
            python_path,
            start_timeout: model.settings.startup_timeout.unwrap_or(self.settings.startup_timeout),
            metrics: model.metrics.clone(),
        };
        Ok(Arc::new(PythonExecutor {
            launch,
            handler,
            envelope: self
                .settings
                .envelope
                .clone()
                .or_else(|| model.manifest.model.envelope.clone())
                .unwrap_or_default(),
            batch_size: model.settings.batch_size,
            response_timeout: model.settings.response_timeout,
            max_response_size: self.settings.max_response_size,
        }))
    }
}

impl PythonRuntime {
    /// Installs a model's requirements as TorchServe does with `install_py_dep_per_model`: into
    /// its venv (`venv_python`) when it has one, else `pip install --target <model folder>`, a
    /// folder on the worker's `PYTHONPATH`.
    fn install_requirements(
        &self,
        name: &str,
        dir: &Path,
        requirements: &str,
        venv_python: Option<&PathBuf>,
    ) -> Result<()> {
        let file = dir.join(requirements);
        tracing::info!(model = name, requirements, "installing the model's Python dependencies");
        let mut pip = Command::new(venv_python.unwrap_or(&self.settings.python));
        pip.args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q"]);
        if venv_python.is_some() {
            pip.args(["-U", "--upgrade-strategy", "only-if-needed"]);
        } else {
            pip.arg("--target").arg(dir);
        }
        pip.arg("-r").arg(&file).current_dir(dir);
        run_step(pip, &format!("model {name}: installing {requirements}"))
    }

    /// Makes `venv` (once) with TorchServe's own `ts/utils/setup_model_venv.py`: a venv of the
    /// configured interpreter that also sees that interpreter's packages.
    fn make_venv(&self, name: &str, dir: &Path, venv: &Path, ts_home: &Path) -> Result<()> {
        if venv.join("bin/python").exists() {
            return Ok(());
        }
        tracing::info!(model = name, venv = %venv.display(), "making the model's virtual environment");
        let mut setup = Command::new(&self.settings.python);
        setup.arg(ts_home.join("ts/utils/setup_model_venv.py")).arg(venv).current_dir(dir);
        run_step(setup, &format!("model {name}: making its virtual environment (useVenv)"))
    }
}

/// Runs one set-up command; its failure is a load error with the last lines it wrote.
fn run_step(mut command: Command, what: &str) -> Result<()> {
    let output =
        command.output().map_err(|e| EngineError::Load(format!("{what}: cannot run it: {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&output.stderr);
    let out = String::from_utf8_lossy(&output.stdout);
    let last: Vec<&str> = out.lines().chain(err.lines()).filter(|l| !l.trim().is_empty()).collect();
    let tail = last[last.len().saturating_sub(3)..].join(" | ");
    Err(EngineError::Load(format!("{what} failed ({}): {tail}", output.status)))
}

/// Whether a model's handler is Python: a `.py` handler (`file.py` or `file.py:function`), a
/// `module:function` entry point or a module file in the model folder, or one of TorchServe's
/// default handlers over a model that is not ONNX (`.pt`, `.pth`, `.so`...). An ONNX model with a
/// built-in handler stays native. The manifest's `runtime: python` alone decides nothing: the
/// archiver writes it into every archive.
pub fn is_python_model(manifest: &Manifest, dir: &Path) -> bool {
    let Some(handler) = manifest.model.handler.as_deref().filter(|h| !h.is_empty()) else {
        return false;
    };
    let (module, function) = match handler.rsplit_once(':') {
        Some((m, f)) => (m, Some(f)),
        None => (handler, None),
    };
    if module.ends_with(".py") || function.is_some() || dir.join(format!("{module}.py")).is_file() {
        return true;
    }
    let serialized = manifest.model.serialized_file.as_deref().unwrap_or("");
    let onnx = Path::new(serialized).extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    DEFAULT_HANDLERS.contains(&module) && !serialized.is_empty() && !onnx
}

/// The folder holding the `ts` package the interpreter imports.
fn find_ts_home(python: &Path) -> std::result::Result<PathBuf, String> {
    let output = Command::new(python)
        .args([
            "-c",
            "import os, ts; print(os.path.dirname(os.path.dirname(os.path.abspath(ts.__file__))))",
        ])
        .env_remove("PYTHONPATH")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr);
        let last = err.lines().last().unwrap_or("").trim();
        return Err(format!(
            "{} cannot import TorchServe's `ts` package ({last})",
            python.display()
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
}
