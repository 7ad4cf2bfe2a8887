//! Per-model settings and where they come from.
//!
//! TorchServe layers model settings: server defaults, then the `models={…}` entry of
//! `config.properties`, then the archive's `model-config.yaml`, then the arguments of the register
//! call. Each layer is a [`ModelOverrides`] whose set fields win over the layer below;
//! [`ModelOverrides::resolve`] turns the stack into the [`ModelSettings`] a model version runs with.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use oxserve_backend::{Device, GpuFallback};
use serde::Deserialize;

use oxserve_store::archive::UnpackLimits;
use oxserve_store::remote::{AllowList, DownloadLimits};

/// Process-wide defaults and limits of the serving core.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Folder that register calls and startup models resolve names against.
    pub model_store: PathBuf,
    /// Workers started for a model that does not say (`default_workers_per_model`). 0 is
    /// TorchServe's "not set": a model named at startup gets one worker, a register call none
    /// (TorchServe's `initial_workers` default), unless its archive says `minWorkers`.
    pub default_workers_per_model: usize,
    /// Queue capacity for a model that does not say (`job_queue_size`).
    pub job_queue_size: usize,
    /// Response timeout for a model that does not say (`default_response_timeout`).
    pub default_response_timeout: Duration,
    /// Batch size for a model that does not say.
    pub default_batch_size: usize,
    /// Batch delay for a model that does not say (TorchServe's default is 100 ms).
    pub default_max_batch_delay: Duration,
    /// Limits applied when unpacking archives.
    pub unpack_limits: UnpackLimits,
    /// Per-model entries of `config.properties`' `models=` key: name → version → overrides.
    pub models: BTreeMap<String, BTreeMap<String, ModelOverrides>>,
    /// Engine for models that do not name one: `auto` (the first engine the registry was given,
    /// ONNX Runtime when it is installed) or an engine name.
    pub default_engine: String,
    /// Intra-op threads per worker session for models that do not say (`intra_op_threads`); `None`
    /// lets the engine decide (one thread: throughput then scales with workers without
    /// oversubscribing the cores).
    pub default_intra_op_threads: Option<usize>,
    /// URL prefixes models may be registered from (`allowed_urls`); empty: none.
    pub allowed_urls: AllowList,
    /// Size and time limits of those downloads.
    pub download_limits: DownloadLimits,
    /// GPUs workers may use (`number_of_gpu`): a model with `deviceType: gpu` and no `deviceIds`
    /// spreads its workers over GPUs `0..number_of_gpu`, and `deviceIds` must lie below it. 0 (the
    /// default: oxserve does not probe for GPUs) means unknown: such a model uses GPU 0, and the
    /// engine finds out whether it is there.
    pub number_of_gpu: usize,
    /// What happens when a GPU is asked for but cannot be used (`gpu_fallback`): a logged CPU
    /// fallback (default) or a load error.
    pub gpu_fallback: GpuFallback,
    /// Let TensorRT build FP16 kernels on GPUs for models that do not say (`tensorrt_fp16`).
    pub tensorrt_fp16: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            model_store: PathBuf::from("model_store"),
            default_workers_per_model: 1,
            job_queue_size: 100,
            default_response_timeout: Duration::from_secs(120),
            default_batch_size: 1,
            default_max_batch_delay: Duration::from_millis(100),
            unpack_limits: UnpackLimits::default(),
            models: BTreeMap::new(),
            default_engine: "auto".to_owned(),
            default_intra_op_threads: None,
            allowed_urls: AllowList::default(),
            download_limits: DownloadLimits::default(),
            number_of_gpu: 0,
            gpu_fallback: GpuFallback::Cpu,
            tensorrt_fp16: false,
        }
    }
}

/// Where a model's workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeviceType {
    /// Host CPU.
    #[default]
    Cpu,
    /// A GPU; the embedded engine has none and refuses such a model at load.
    Gpu,
}

/// The devices a model's workers are spread over, in order: worker `k` runs on
/// `plan[k % plan.len()]` ([`worker_device`]), TorchServe's round-robin. On a GPU: `deviceIds` when
/// given, else GPUs `0..number_of_gpu`, else GPU 0 (nothing is known about the machine; the engine
/// tries it and falls back or fails as `gpu_fallback` says).
///
/// # Errors
/// A device id at or beyond a known `number_of_gpu`, or `deviceIds` given for a CPU model.
pub fn device_plan(
    device_type: DeviceType,
    device_ids: &[u32],
    number_of_gpu: usize,
) -> Result<Vec<Device>, String> {
    match device_type {
        DeviceType::Cpu if device_ids.is_empty() => Ok(vec![Device::Cpu]),
        DeviceType::Cpu => Err(format!(
            "deviceIds {device_ids:?} are given but deviceType is cpu; set deviceType: gpu"
        )),
        DeviceType::Gpu if !device_ids.is_empty() => {
            if let Some(id) = device_ids.iter().find(|id| {
                number_of_gpu > 0 && usize::try_from(**id).map_or(true, |i| i >= number_of_gpu)
            }) {
                return Err(format!(
                    "deviceIds names GPU {id}, but number_of_gpu is {number_of_gpu} (GPUs 0 to {})",
                    number_of_gpu - 1
                ));
            }
            Ok(device_ids.iter().map(|id| Device::Gpu(*id)).collect())
        }
        DeviceType::Gpu if number_of_gpu > 0 => {
            let ids = u32::try_from(number_of_gpu).map_err(|_| "number_of_gpu is too large")?;
            Ok((0..ids).map(Device::Gpu).collect())
        }
        DeviceType::Gpu => Ok(vec![Device::Gpu(0)]),
    }
}

/// The device of the `k`-th worker started for a model (counting from 0 over its lifetime).
pub fn worker_device(plan: &[Device], k: usize) -> Device {
    if plan.is_empty() { Device::Cpu } else { plan[k % plan.len()] }
}

/// One layer of model settings; `None` means "not set here".
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelOverrides {
    /// Workers started at load and kept at least.
    pub min_workers: Option<usize>,
    /// Upper bound for scaling.
    pub max_workers: Option<usize>,
    /// Most requests run as one batch.
    pub batch_size: Option<usize>,
    /// Longest time, in milliseconds, the oldest queued request waits for a batch to fill.
    pub max_batch_delay: Option<u64>,
    /// Seconds a request may take end to end before it is answered with a timeout.
    pub response_timeout: Option<u64>,
    /// Seconds a worker process may take to start and load the model (worker runtimes such as
    /// Python; TorchServe's `startupTimeout`); unset: the runtime's default.
    pub startup_timeout: Option<u64>,
    /// Queue capacity of this model.
    pub job_queue_size: Option<usize>,
    /// `cpu` or `gpu`.
    pub device_type: Option<DeviceType>,
    /// GPUs the workers are spread over, round-robin.
    pub device_ids: Option<Vec<u32>>,
    /// Version this entry makes the default (`models=` entries only).
    pub default_version: Option<bool>,
    /// Archive file of this entry (`models=` entries only).
    pub mar_name: Option<String>,
    /// `auto`, `tract` or `onnxruntime`.
    pub engine: Option<String>,
    /// What runs the handler: `native` (in the server, on an engine) or a worker runtime's name
    /// (`python`). Unset: a runtime that recognises the model's handler claims it, else native.
    pub runtime: Option<String>,
    /// Handler that replaces the archive's (the register call's `handler=`). Never read from
    /// `model-config.yaml`, where `handler` is the handler's own section.
    #[serde(skip)]
    pub handler: Option<String>,
    /// Intra-op threads of each worker's session (ONNX Runtime; tract runs one).
    pub intra_op_threads: Option<usize>,
    /// On a GPU, let TensorRT build FP16 kernels (ONNX Runtime's GPU build); server default
    /// `tensorrt_fp16`.
    pub tensorrt_fp16: Option<bool>,
    /// Most requests of this model in the server at once, from body read to answer (queued, being
    /// decoded or running); beyond it requests are refused with 503 at once. Unset: only the queue
    /// bounds them.
    pub max_concurrent_requests: Option<usize>,
    /// Python models: run the workers in a venv of their own in the model folder (`venv/`, made
    /// at load with TorchServe's `setup_model_venv.py`, inheriting the interpreter's packages), so
    /// a model's `requirements.txt` installs there (TorchServe's `useVenv`).
    pub use_venv: Option<bool>,
}

impl ModelOverrides {
    /// Fields set in `higher` replace ours.
    pub fn merge(&mut self, higher: &Self) {
        macro_rules! take {
            ($($f:ident),*) => { $( if higher.$f.is_some() { self.$f.clone_from(&higher.$f); } )* };
        }
        take!(
            min_workers,
            max_workers,
            batch_size,
            max_batch_delay,
            response_timeout,
            startup_timeout,
            job_queue_size,
            device_type,
            device_ids,
            default_version,
            mar_name,
            engine,
            runtime,
            handler,
            intra_op_threads,
            tensorrt_fp16,
            max_concurrent_requests,
            use_venv
        );
    }

    /// The settings a model version runs with: our fields, else the engine's defaults. A model
    /// named at startup gets at least one worker by default, a registered one
    /// `default_workers_per_model` (none when unset, as TorchServe's register).
    ///
    /// # Errors
    /// When a value is out of range (zero batch size, queue or timeout).
    pub fn resolve(
        &self,
        defaults: &EngineConfig,
        at_startup: bool,
    ) -> Result<ModelSettings, String> {
        let default_workers = match defaults.default_workers_per_model {
            0 if at_startup => 1,
            n => n,
        };
        let min_workers = self.min_workers.unwrap_or(default_workers);
        let max_workers = self.max_workers.unwrap_or(min_workers).max(min_workers);
        let batch_size = self.batch_size.unwrap_or(defaults.default_batch_size);
        if batch_size == 0 {
            return Err("batchSize must be at least 1".into());
        }
        let job_queue_size = self.job_queue_size.unwrap_or(defaults.job_queue_size);
        if job_queue_size == 0 {
            return Err("jobQueueSize must be at least 1".into());
        }
        let response_timeout =
            self.response_timeout.map_or(defaults.default_response_timeout, Duration::from_secs);
        if response_timeout.is_zero() {
            return Err("responseTimeout must be at least 1 second".into());
        }
        if self.startup_timeout == Some(0) {
            return Err("startupTimeout must be at least 1 second".into());
        }
        Ok(ModelSettings {
            min_workers,
            max_workers,
            batch_size,
            max_batch_delay: self
                .max_batch_delay
                .map_or(defaults.default_max_batch_delay, Duration::from_millis),
            response_timeout,
            startup_timeout: self.startup_timeout.map(Duration::from_secs),
            job_queue_size,
            device_type: self.device_type.unwrap_or_default(),
            device_ids: self.device_ids.clone().unwrap_or_default(),
            use_venv: self.use_venv.unwrap_or(false),
        })
    }
}

/// The effective settings of one model version.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSettings {
    /// Workers kept at least; `/ping` is healthy only when this many are ready.
    pub min_workers: usize,
    /// Upper bound reported by describe and used by scale calls.
    pub max_workers: usize,
    /// Most requests per batch.
    pub batch_size: usize,
    /// Longest wait of the oldest queued request for its batch to fill.
    pub max_batch_delay: Duration,
    /// End-to-end limit of one request.
    pub response_timeout: Duration,
    /// How long a worker process may take to start; `None`: the worker runtime's default.
    pub startup_timeout: Option<Duration>,
    /// Queue capacity.
    pub job_queue_size: usize,
    /// Where workers run.
    pub device_type: DeviceType,
    /// GPUs for round-robin assignment.
    pub device_ids: Vec<u32>,
    /// Python models: workers run in the model's own venv (`useVenv`).
    pub use_venv: bool,
}

/// An archive's `model-config.yaml`: the frontend keys oxserve acts on, plus every other key, which is
/// handed to the model's handler untouched.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelConfigFile {
    /// The keys the serving core understands.
    pub overrides: ModelOverrides,
    /// Everything else, for the handler (TorchServe's `context.model_yaml_config`).
    pub handler_config: serde_json::Map<String, serde_json::Value>,
}

/// Keys of `model-config.yaml` that TorchServe's frontend reads; the rest go to the handler.
const FRONTEND_KEYS: &[&str] = &[
    "minWorkers",
    "maxWorkers",
    "batchSize",
    "maxBatchDelay",
    "responseTimeout",
    "startupTimeout",
    "jobQueueSize",
    "deviceType",
    "deviceIds",
    "engine",
    "runtime",
    "intraOpThreads",
    "tensorrtFp16",
    "maxConcurrentRequests",
    "useVenv",
];

impl ModelConfigFile {
    /// Parses `model-config.yaml` text.
    ///
    /// # Errors
    /// Invalid YAML, or a known key with a value of the wrong type.
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).map_err(|e| format!("invalid model-config.yaml: {e}"))?;
        let mapping = match value {
            serde_yaml_ng::Value::Null => return Ok(Self::default()),
            serde_yaml_ng::Value::Mapping(m) => m,
            _ => return Err("model-config.yaml must be a mapping of keys to values".into()),
        };
        let mut frontend = serde_yaml_ng::Mapping::new();
        let mut handler_config = serde_json::Map::new();
        for (key, value) in mapping {
            let Some(name) = key.as_str().map(str::to_owned) else {
                return Err(format!("model-config.yaml key {key:?} is not a string"));
            };
            if FRONTEND_KEYS.contains(&name.as_str()) {
                frontend.insert(serde_yaml_ng::Value::String(name), value);
            } else {
                let json = serde_json::to_value(&value)
                    .map_err(|e| format!("model-config.yaml key `{name}`: {e}"))?;
                handler_config.insert(name, json);
            }
        }
        let overrides: ModelOverrides =
            serde_yaml_ng::from_value(serde_yaml_ng::Value::Mapping(frontend))
                .map_err(|e| format!("invalid model-config.yaml: {e}"))?;
        Ok(Self { overrides, handler_config })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_frontend_keys_and_keeps_the_rest() {
        let cfg = ModelConfigFile::parse(
            "minWorkers: 2\nmaxWorkers: 4\nbatchSize: 8\nmaxBatchDelay: 50\nresponseTimeout: 30\n\
             jobQueueSize: 7\ndeviceType: gpu\ndeviceIds: [0, 1]\ncustomKey: hello\npt2:\n  compile: true\n\
             engine: onnxruntime\nintraOpThreads: 2\ntensorrtFp16: true\n",
        )
        .unwrap();
        assert_eq!(cfg.overrides.min_workers, Some(2));
        assert_eq!(cfg.overrides.max_workers, Some(4));
        assert_eq!(cfg.overrides.batch_size, Some(8));
        assert_eq!(cfg.overrides.max_batch_delay, Some(50));
        assert_eq!(cfg.overrides.response_timeout, Some(30));
        assert_eq!(cfg.overrides.job_queue_size, Some(7));
        assert_eq!(cfg.overrides.device_type, Some(DeviceType::Gpu));
        assert_eq!(cfg.overrides.device_ids, Some(vec![0, 1]));
        assert_eq!(cfg.handler_config["customKey"], "hello");
        assert_eq!(cfg.overrides.engine.as_deref(), Some("onnxruntime"));
        assert_eq!(cfg.overrides.intra_op_threads, Some(2));
        assert_eq!(cfg.overrides.tensorrt_fp16, Some(true));
        assert!(!cfg.handler_config.contains_key("tensorrtFp16"));
        assert!(!cfg.handler_config.contains_key("engine"));
        assert_eq!(cfg.handler_config["pt2"]["compile"], true);
    }

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(ModelConfigFile::parse("").unwrap(), ModelConfigFile::default());
    }

    #[test]
    fn wrong_types_are_refused() {
        assert!(ModelConfigFile::parse("batchSize: lots\n").is_err());
        assert!(ModelConfigFile::parse("- a\n- b\n").is_err());
    }

    #[test]
    fn higher_layers_win_and_defaults_fill_the_rest() {
        let mut base =
            ModelOverrides { batch_size: Some(4), min_workers: Some(2), ..Default::default() };
        base.merge(&ModelOverrides { batch_size: Some(8), ..Default::default() });
        let s = base.resolve(&EngineConfig::default(), false).unwrap();
        assert_eq!(s.batch_size, 8);
        assert_eq!(s.min_workers, 2);
        assert_eq!(s.max_workers, 2);
        assert_eq!(s.job_queue_size, 100);
        assert_eq!(s.max_batch_delay, Duration::from_millis(100));
        assert_eq!(s.response_timeout, Duration::from_secs(120));
    }

    #[test]
    fn workers_are_spread_over_gpus_round_robin() {
        let cpu = device_plan(DeviceType::Cpu, &[], 4).unwrap();
        assert_eq!(cpu, vec![Device::Cpu]);
        assert_eq!(
            (0..3).map(|k| worker_device(&cpu, k)).collect::<Vec<_>>(),
            vec![Device::Cpu; 3]
        );
        // deviceIds win over number_of_gpu, in the order given.
        let ids = device_plan(DeviceType::Gpu, &[2, 0], 4).unwrap();
        let five: Vec<Device> = (0..5).map(|k| worker_device(&ids, k)).collect();
        use Device::Gpu;
        assert_eq!(five, vec![Gpu(2), Gpu(0), Gpu(2), Gpu(0), Gpu(2)]);
        // Without deviceIds: 0..number_of_gpu.
        let all = device_plan(DeviceType::Gpu, &[], 3).unwrap();
        let four: Vec<Device> = (0..4).map(|k| worker_device(&all, k)).collect();
        assert_eq!(four, vec![Gpu(0), Gpu(1), Gpu(2), Gpu(0)]);
        // Nothing known about the machine: GPU 0; any id is allowed.
        assert_eq!(device_plan(DeviceType::Gpu, &[], 0).unwrap(), vec![Gpu(0)]);
        assert_eq!(device_plan(DeviceType::Gpu, &[7], 0).unwrap(), vec![Gpu(7)]);
    }

    #[test]
    fn impossible_device_plans_are_refused() {
        let err = device_plan(DeviceType::Gpu, &[0, 2], 2).unwrap_err();
        assert!(err.contains("GPU 2") && err.contains("number_of_gpu is 2"), "{err}");
        let err = device_plan(DeviceType::Cpu, &[1], 2).unwrap_err();
        assert!(err.contains("deviceType"), "{err}");
        assert_eq!(worker_device(&[], 5), Device::Cpu);
    }

    #[test]
    fn zero_batch_size_is_refused() {
        let o = ModelOverrides { batch_size: Some(0), ..Default::default() };
        assert!(o.resolve(&EngineConfig::default(), false).is_err());
    }

    #[test]
    fn unset_default_workers_give_startup_models_one_and_registered_ones_none() {
        let unset = EngineConfig { default_workers_per_model: 0, ..EngineConfig::default() };
        let none = ModelOverrides::default();
        assert_eq!(none.resolve(&unset, true).unwrap().min_workers, 1);
        assert_eq!(none.resolve(&unset, false).unwrap().min_workers, 0);
        let archive = ModelOverrides { min_workers: Some(3), ..Default::default() };
        assert_eq!(archive.resolve(&unset, false).unwrap().min_workers, 3);
        let set = EngineConfig { default_workers_per_model: 2, ..EngineConfig::default() };
        assert_eq!(none.resolve(&set, false).unwrap().min_workers, 2);
    }

    #[test]
    fn a_zero_startup_timeout_is_refused() {
        let o = ModelOverrides { startup_timeout: Some(0), ..Default::default() };
        let err = o.resolve(&EngineConfig::default(), false).unwrap_err();
        assert!(err.contains("startupTimeout"), "{err}");
        let o = ModelOverrides { startup_timeout: Some(5), ..Default::default() };
        let s = o.resolve(&EngineConfig::default(), false).unwrap();
        assert_eq!(s.startup_timeout, Some(Duration::from_secs(5)));
    }
}
