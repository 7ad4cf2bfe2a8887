//! Server settings from TorchServe's `config.properties`, command-line flags and `TS_*` environment
//! variables, in TorchServe's precedence: environment > flags > file > defaults. Environment variables
//! count only when `enable_envvars_config=true`, as in TorchServe.

use oxserve_python::PythonSettings;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use oxserve_core::config::{EngineConfig, ModelOverrides};
use oxserve_core::metric_log::Rotation;
use oxserve_core::metrics::ModelMetricsConfig;
use oxserve_server::{AuthConfig, ServerConfig};
use oxserve_store::remote::{AllowList, DownloadLimits};

mod listeners;
mod snapshot;

/// Keys of config.properties that oxserve reads; others are logged as ignored.
const KNOWN_KEYS: &[&str] = &[
    "inference_address",
    "management_address",
    "metrics_address",
    "grpc_inference_port",
    "grpc_management_port",
    "grpc_inference_address",
    "grpc_management_address",
    "model_store",
    "load_models",
    "models",
    "model_snapshot",
    "default_workers_per_model",
    "job_queue_size",
    "max_request_size",
    "max_response_size",
    "default_response_timeout",
    "enable_model_api",
    "enable_envvars_config",
    "log_location",
    "metric_time_interval",
    "log_file_max_size",
    "log_file_backups",
    "disable_token_authorization",
    "token_expiration_min",
    "key_file",
    "external_key_file",
    "drain_timeout",
    "default_engine",
    "onnxruntime_lib",
    "python",
    "model_server_home",
    "install_py_dep_per_model",
    "service_envelope",
    "metrics_config",
    "model_metrics_auto_detect",
    "intra_op_threads",
    "allowed_urls",
    "header_read_timeout",
    "body_read_timeout",
    "certificate_file",
    "private_key_file",
    "enable_grpc_ssl",
    "keystore",
    "max_model_download_size",
    "number_of_gpu",
    "gpu_fallback",
    "tensorrt_fp16",
    "server_name",
    "job_store",
];

/// Raw settings as strings, layered; parsed once all layers are in.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layers {
    values: HashMap<String, String>,
}

impl Layers {
    /// Reads a config.properties file (Java properties syntax: `key=value`, `\` line continuations).
    pub(crate) fn read_file(&mut self, path: &Path) -> anyhow::Result<()> {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let props = java_properties::read(std::io::BufReader::new(file))
            .with_context(|| format!("cannot parse {}", path.display()))?;
        for (key, value) in props {
            if !KNOWN_KEYS.contains(&key.as_str()) {
                tracing::warn!(key, "config.properties key is not used by oxserve");
            }
            self.values.insert(key, value.trim().to_owned());
        }
        Ok(())
    }

    /// Sets a key from a flag or variable.
    pub(crate) fn set(&mut self, key: &str, value: impl Into<String>) {
        self.values.insert(key.to_owned(), value.into());
    }

    /// Applies `TS_<KEY>` variables from `env` when `enable_envvars_config` is true in the layers so far.
    pub(crate) fn apply_env(&mut self, env: &HashMap<String, String>) -> anyhow::Result<()> {
        // TorchServe reads this one whatever enable_envvars_config says.
        if let Some(v) = env.get("TS_DISABLE_TOKEN_AUTHORIZATION") {
            self.values.insert("disable_token_authorization".into(), v.clone());
        }
        if !self.flag("enable_envvars_config")? {
            return Ok(());
        }
        for key in KNOWN_KEYS {
            if let Some(v) = env.get(&format!("TS_{}", key.to_uppercase())) {
                self.values.insert((*key).to_owned(), v.clone());
            }
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    fn flag(&self, key: &str) -> anyhow::Result<bool> {
        match self.get(key) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => bail!("{key} must be true or false, got `{v}`"),
        }
    }

    fn number<T: std::str::FromStr>(&self, key: &str, default: T) -> anyhow::Result<T> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => {
                v.parse().map_err(|_| anyhow::anyhow!("{key} must be a whole number, got `{v}`"))
            }
        }
    }

    /// A number of minutes, fractions allowed; 0 when unset.
    fn minutes(&self, key: &str) -> anyhow::Result<f64> {
        match self.get(key) {
            None => Ok(0.0),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("{key} must be a number of minutes, got `{v}`")),
        }
    }

    /// Validates every layer into the configurations the server and engine take.
    pub(crate) fn resolve(&self) -> anyhow::Result<Resolved> {
        let server = ServerConfig {
            inference_address: self.address("inference_address", "http://127.0.0.1:8080")?,
            management_address: self.address("management_address", "http://127.0.0.1:8081")?,
            metrics_address: self.address("metrics_address", "http://127.0.0.1:8082")?,
            grpc_inference_address: self.grpc_address(
                "grpc_inference_address",
                "grpc_inference_port",
                7070,
            )?,
            grpc_management_address: self.grpc_address(
                "grpc_management_address",
                "grpc_management_port",
                7071,
            )?,
            max_request_size: self.number("max_request_size", 6_553_500)?,
            max_response_size: self.number("max_response_size", 6_553_500)?,
            enable_model_api: self.flag("enable_model_api")?,
            auth: if self.flag("disable_token_authorization")? {
                None
            } else {
                let external = self.get("external_key_file").filter(|f| !f.trim().is_empty());
                Some(AuthConfig {
                    key_file: PathBuf::from(
                        external.or(self.get("key_file")).unwrap_or("key_file.json"),
                    ),
                    external: external.is_some(),
                    // Minutes, fractions allowed as TorchServe allows them (0.25 is 15 s).
                    expiration: match self.minutes("token_expiration_min")? {
                        0.0 => None,
                        m if m.is_finite() && m > 0.0 => Some(Duration::from_secs_f64(m * 60.0)),
                        m => bail!(
                            "token_expiration_min must be a positive number of minutes, got {m}"
                        ),
                    },
                })
            },
            drain_timeout: Duration::from_secs(self.number("drain_timeout", 30)?),
            header_read_timeout: Duration::from_secs(self.number("header_read_timeout", 10)?),
            body_read_timeout: Duration::from_secs(self.number("body_read_timeout", 60)?),
            tls: self.tls()?,
            server_name: match self.get("server_name").map(str::trim) {
                None => "oxserve".into(),
                Some("") => bail!("server_name must not be empty"),
                Some(name) => name.to_owned(),
            },
            // Beside the key file and the logs, in the working folder, unless set; created when
            // the first PII job starts.
            job_store: Some(PathBuf::from(self.get("job_store").unwrap_or("jobs"))),
        };
        let defaults = EngineConfig::default();
        let engine = EngineConfig {
            model_store: self.get("model_store").map(PathBuf::from).unwrap_or(defaults.model_store),
            // Unset is TorchServe's 0: one worker for models named at startup, none for a
            // register call that does not say `initial_workers`.
            default_workers_per_model: self.number("default_workers_per_model", 0)?,
            job_queue_size: self.number("job_queue_size", defaults.job_queue_size)?,
            default_response_timeout: Duration::from_secs(
                self.number(
                    "default_response_timeout",
                    defaults.default_response_timeout.as_secs(),
                )?,
            ),
            default_engine: self.get("default_engine").unwrap_or("auto").to_ascii_lowercase(),
            default_intra_op_threads: match self.get("intra_op_threads") {
                None => None,
                Some(_) => Some(self.number("intra_op_threads", 1)?),
            },
            models: match self.get("models") {
                Some(json) => parse_models(json)?,
                None => BTreeMap::new(),
            },
            allowed_urls: AllowList::parse(self.get("allowed_urls").unwrap_or_default())
                .map_err(|e| anyhow::anyhow!(e))?,
            download_limits: DownloadLimits {
                max_bytes: self
                    .number("max_model_download_size", defaults.download_limits.max_bytes)?,
                ..defaults.download_limits.clone()
            },
            number_of_gpu: self.number("number_of_gpu", defaults.number_of_gpu)?,
            gpu_fallback: self
                .get("gpu_fallback")
                .map_or(Ok(defaults.gpu_fallback), str::parse)
                .map_err(|e: String| anyhow::anyhow!(e))?,
            tensorrt_fp16: self.flag("tensorrt_fp16")?,
            ..defaults
        };
        if engine.job_queue_size == 0 {
            bail!("job_queue_size must be at least 1");
        }
        let mut load_models = self.get("load_models").map(parse_load_models).unwrap_or_default();
        // As in TorchServe, a snapshot names the startup models; `load_models` beside it is not read.
        if let Some(json) = self.get("model_snapshot") {
            if !load_models.is_empty() {
                tracing::warn!("load_models is ignored: model_snapshot names the startup models");
            }
            load_models = snapshot::parse(json)?;
        }
        let log_dir = PathBuf::from(self.get("log_location").unwrap_or("logs"));
        let metric_interval = Duration::from_secs(self.number("metric_time_interval", 60)?);
        if metric_interval.is_zero() {
            bail!("metric_time_interval must be at least 1 second");
        }
        if !matches!(engine.default_engine.as_str(), "auto" | "tract" | "onnxruntime") {
            bail!(
                "default_engine must be auto, tract or onnxruntime, got `{}`",
                engine.default_engine
            );
        }
        let defaults = Rotation::default();
        let log_rotation = Rotation {
            max_bytes: self.number("log_file_max_size", defaults.max_bytes)?,
            backups: self.number("log_file_backups", defaults.backups)?,
        };
        if log_rotation.max_bytes < 1024 {
            bail!("log_file_max_size must be at least 1024 bytes, got {}", log_rotation.max_bytes);
        }
        let onnxruntime_lib = self.get("onnxruntime_lib").map(PathBuf::from);
        let metrics_config = self.get("metrics_config").map(PathBuf::from);
        let model_metrics = ModelMetricsConfig {
            declared: match &metrics_config {
                Some(path) => {
                    let text = std::fs::read_to_string(path).with_context(|| {
                        format!("cannot read metrics_config {}", path.display())
                    })?;
                    ModelMetricsConfig::from_yaml(&text).map_err(|e| {
                        anyhow::anyhow!(
                            "metrics_config {} is not a metrics file: {e}",
                            path.display()
                        )
                    })?
                }
                None => Vec::new(),
            },
            auto_detect: self.flag("model_metrics_auto_detect")?,
        };
        let python_defaults = PythonSettings::default();
        let python = PythonSettings {
            python: self.get("python").map_or(python_defaults.python, PathBuf::from),
            ts_home: self.get("model_server_home").map(PathBuf::from),
            max_response_size: server.max_response_size,
            metrics_config,
            install_dependencies: self.flag("install_py_dep_per_model")?,
            envelope: self
                .get("service_envelope")
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_owned),
            ..python_defaults
        };
        Ok(Resolved {
            server,
            engine,
            load_models,
            log_dir,
            metric_interval,
            log_rotation,
            onnxruntime_lib,
            python,
            model_metrics,
        })
    }
}

/// Validated settings.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) server: ServerConfig,
    pub(crate) engine: EngineConfig,
    pub(crate) load_models: Vec<StartupModel>,
    /// Folder of the metric and access logs (`log_location`, TorchServe's `LOG_LOCATION`).
    pub(crate) log_dir: PathBuf,
    /// How often host metrics go to `ts_metrics.log` (`metric_time_interval`).
    pub(crate) metric_interval: Duration,
    /// When the log files roll over (`log_file_max_size` in bytes, `log_file_backups`).
    pub(crate) log_rotation: Rotation,
    /// The ONNX Runtime library (`onnxruntime_lib`); searched for when `None`.
    pub(crate) onnxruntime_lib: Option<PathBuf>,
    /// The Python worker runtime (`python`, `model_server_home`).
    pub(crate) python: PythonSettings,
    /// Which metrics of Python workers become series (`metrics_config`,
    /// `model_metrics_auto_detect`).
    pub(crate) model_metrics: ModelMetricsConfig,
}

/// A model named at startup: `all`, a file name, or `name=file`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StartupModel {
    /// Everything in the model store.
    All,
    /// One archive or folder, optionally under a given name.
    One { name: Option<String>, url: String },
    /// A `model_snapshot` entry: its settings win over the archive's, as TorchServe restores them.
    Snapshot { name: String, url: String, overrides: Box<ModelOverrides>, default: bool },
}

/// Parses `load_models` / `--models`: `standalone` (nothing), `all`, or a comma-separated list of
/// `file` and `name=file`.
pub(crate) fn parse_load_models(value: &str) -> Vec<StartupModel> {
    value
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "standalone")
        .map(|s| match s.split_once('=') {
            _ if s == "all" => StartupModel::All,
            Some((name, url)) => {
                StartupModel::One { name: Some(name.to_owned()), url: url.to_owned() }
            }
            None => StartupModel::One { name: None, url: s.to_owned() },
        })
        .collect()
}

/// TorchServe's `models={"name": {"1.0": {"minWorkers": 1, …}}}`.
fn parse_models(json: &str) -> anyhow::Result<BTreeMap<String, BTreeMap<String, ModelOverrides>>> {
    serde_json::from_str(json).context("invalid `models` value in config.properties")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_models_forms() {
        assert_eq!(parse_load_models("standalone"), vec![]);
        assert_eq!(parse_load_models("all"), vec![StartupModel::All]);
        assert_eq!(
            parse_load_models("a.mar, b=b.mar"),
            vec![
                StartupModel::One { name: None, url: "a.mar".into() },
                StartupModel::One { name: Some("b".into()), url: "b.mar".into() }
            ]
        );
    }

    #[test]
    fn file_then_flags_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.properties");
        std::fs::write(
            &file,
            "inference_address=http://127.0.0.1:9080\njob_queue_size=7\nenable_envvars_config=true\n\
             models={\"m\": {\"1.0\": {\"batchSize\": 4, \\\n  \"maxBatchDelay\": 20}}}\n",
        )
        .unwrap();
        let mut layers = Layers::default();
        layers.read_file(&file).unwrap();
        layers.set("job_queue_size", "9");
        let env = HashMap::from([("TS_JOB_QUEUE_SIZE".to_owned(), "11".to_owned())]);
        layers.apply_env(&env).unwrap();
        let r = layers.resolve().unwrap();
        assert_eq!(r.server.inference_address, "127.0.0.1:9080".parse().unwrap());
        assert_eq!(r.server.management_address, "127.0.0.1:8081".parse().unwrap());
        assert_eq!(r.engine.job_queue_size, 11);
        assert_eq!(r.engine.models["m"]["1.0"].batch_size, Some(4));
        assert_eq!(r.engine.models["m"]["1.0"].max_batch_delay, Some(20));
    }

    #[test]
    fn allowed_urls_are_prefixes_and_torchserve_regexes_are_refused() {
        let mut layers = Layers::default();
        layers.set("allowed_urls", "https://models.example.com/releases/,http://10.0.0.5:8000/");
        layers.set("max_model_download_size", "1000");
        let r = layers.resolve().unwrap();
        assert!(r.engine.allowed_urls.check("https://models.example.com/releases/a.mar").is_ok());
        assert_eq!(r.engine.download_limits.max_bytes, 1000);
        // TorchServe's default allowed everything; copied over, it must not start silently.
        layers.set("allowed_urls", r"file://.*|http(s)?://.*");
        let err = layers.resolve().unwrap_err().to_string();
        assert!(err.contains("regular expression"), "{err}");
        assert!(Layers::default().resolve().unwrap().engine.allowed_urls.is_empty());
    }

    #[test]
    fn log_files_roll_over_at_torchserve_s_size_unless_told_otherwise() {
        let r = Layers::default().resolve().unwrap();
        assert_eq!(r.log_rotation, Rotation { max_bytes: 100 * 1024 * 1024, backups: 5 });
        let mut layers = Layers::default();
        layers.set("log_file_max_size", "1048576");
        layers.set("log_file_backups", "0");
        let r = layers.resolve().unwrap();
        assert_eq!(r.log_rotation, Rotation { max_bytes: 1_048_576, backups: 0 });
        layers.set("log_file_max_size", "10");
        let err = layers.resolve().unwrap_err().to_string();
        assert!(err.contains("log_file_max_size must be at least 1024"), "{err}");
        layers.set("log_file_max_size", "lots");
        assert!(layers.resolve().unwrap_err().to_string().contains("whole number"));
    }

    #[test]
    fn env_is_ignored_unless_enabled() {
        let mut layers = Layers::default();
        let env = HashMap::from([("TS_JOB_QUEUE_SIZE".to_owned(), "11".to_owned())]);
        layers.apply_env(&env).unwrap();
        assert_eq!(layers.resolve().unwrap().engine.job_queue_size, 100);
    }

    #[test]
    fn grpc_ports_and_addresses() {
        let mut layers = Layers::default();
        layers.set("grpc_inference_port", "9090");
        layers.set("grpc_management_address", "0.0.0.0");
        let r = layers.resolve().unwrap();
        assert_eq!(r.server.grpc_inference_address, "127.0.0.1:9090".parse().unwrap());
        assert_eq!(r.server.grpc_management_address, "0.0.0.0:7071".parse().unwrap());
        let mut layers = Layers::default();
        layers.set("grpc_management_address", "http://127.0.0.1:9191");
        layers.set("grpc_inference_port", "0");
        let r = layers.resolve().unwrap();
        assert_eq!(r.server.grpc_management_address, "127.0.0.1:9191".parse().unwrap());
        assert_eq!(r.server.grpc_inference_address.port(), 0);
        let mut layers = Layers::default();
        layers.set("grpc_inference_port", "seventy");
        assert!(layers.resolve().is_err());
    }

    #[test]
    fn defaults_are_torchserve_s_secure_ones() {
        let r = Layers::default().resolve().unwrap();
        assert!(r.server.inference_address.ip().is_loopback());
        assert!(r.server.management_address.ip().is_loopback());
        assert!(r.server.metrics_address.ip().is_loopback());
        assert_eq!(r.server.grpc_inference_address, "127.0.0.1:7070".parse().unwrap());
        assert_eq!(r.server.grpc_management_address, "127.0.0.1:7071".parse().unwrap());
        assert!(!r.server.enable_model_api);
        let auth = r.server.auth.expect("token authorization is on by default");
        assert_eq!(auth.key_file, PathBuf::from("key_file.json"));
        assert_eq!(auth.expiration, None);
        assert_eq!(r.server.max_request_size, 6_553_500);
        // TorchServe's unset: registered models start no worker unless asked.
        assert_eq!(r.engine.default_workers_per_model, 0);
        assert_eq!(r.server.server_name, "oxserve");
        let mut layers = Layers::default();
        layers.set("server_name", "triton");
        assert_eq!(layers.resolve().unwrap().server.server_name, "triton");
        layers.set("server_name", " ");
        assert!(layers.resolve().is_err(), "an empty name is refused");
    }

    #[test]
    fn token_authorization_can_be_turned_off_or_given_an_expiry() {
        let mut layers = Layers::default();
        layers.set("token_expiration_min", "30");
        assert_eq!(
            layers.resolve().unwrap().server.auth.unwrap().expiration,
            Some(Duration::from_secs(1800))
        );
        // TorchServe's own tests use a quarter of a minute.
        layers.set("token_expiration_min", "0.25");
        assert_eq!(
            layers.resolve().unwrap().server.auth.unwrap().expiration,
            Some(Duration::from_secs(15))
        );
        for bad in ["-1", "soon", "inf"] {
            layers.set("token_expiration_min", bad);
            assert!(layers.resolve().is_err(), "{bad}");
        }
        layers.set("token_expiration_min", "30");
        let env = HashMap::from([("TS_DISABLE_TOKEN_AUTHORIZATION".to_owned(), "true".to_owned())]);
        layers.apply_env(&env).unwrap();
        assert!(layers.resolve().unwrap().server.auth.is_none());
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let mut layers = Layers::default();
        layers.set("job_queue_size", "lots");
        assert!(layers.resolve().unwrap_err().to_string().contains("job_queue_size"));
    }

    #[test]
    fn gpu_keys() {
        use oxserve_backend::GpuFallback;
        let r = Layers::default().resolve().unwrap();
        assert_eq!(
            (r.engine.number_of_gpu, r.engine.gpu_fallback, r.engine.tensorrt_fp16),
            (0, GpuFallback::Cpu, false)
        );
        let mut layers = Layers::default();
        layers.set("number_of_gpu", "2");
        layers.set("gpu_fallback", "error");
        layers.set("tensorrt_fp16", "true");
        let r = layers.resolve().unwrap();
        assert_eq!(
            (r.engine.number_of_gpu, r.engine.gpu_fallback, r.engine.tensorrt_fp16),
            (2, GpuFallback::Error, true)
        );
        layers.set("gpu_fallback", "maybe");
        assert!(layers.resolve().unwrap_err().to_string().contains("gpu_fallback"));
    }
}
