//! TorchServe's describe answer (`GET /models/{m}[/{v}]`, gRPC `DescribeModel`): a model
//! version's state in TorchServe's field names.

use std::time::Duration;

use oxserve_core::VersionStatus;
use oxserve_core::config::DeviceType;
use serde::Serialize;

/// One entry of the describe answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Description {
    model_name: String,
    model_version: String,
    model_url: String,
    engine: &'static str,
    runtime: &'static str,
    handler: String,
    min_workers: usize,
    max_workers: usize,
    batch_size: usize,
    max_batch_delay: u64,
    response_timeout: u64,
    device_type: &'static str,
    loaded_at_startup: bool,
    /// Whether a Python model's workers run in its own venv (`useVenv`).
    use_venv: bool,
    /// Intra-op threads per worker session; absent when the engine's default (one) is used.
    #[serde(skip_serializing_if = "Option::is_none")]
    intra_op_threads: Option<usize>,
    workers: Vec<WorkerDescription>,
    job_queue_status: JobQueueStatus,
    /// What the handler's `describe_handle` answered, when asked (`?customized=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    customized_metadata: Option<serde_json::Value>,
}

impl Description {
    /// With the handler's own metadata.
    pub(crate) fn with_customized(mut self, metadata: serde_json::Value) -> Self {
        self.customized_metadata = Some(metadata);
        self
    }
}

/// One worker in describe output.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkerDescription {
    id: String,
    start_time: String,
    status: &'static str,
    /// Resident memory of its process: the worker process's own, or the server's for workers
    /// that are threads of the server (they share it).
    memory_usage: u64,
    pid: u32,
    /// Whether the worker runs on a GPU (after any fallback to the CPU).
    gpu: bool,
    /// Where the worker runs: `cpu` or `gpu:N`; before it has started, where it was assigned.
    device: String,
    gpu_usage: &'static str,
}

/// Live queue counts in describe output.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct JobQueueStatus {
    remaining_capacity: usize,
    pending_requests: usize,
}

impl From<VersionStatus> for Description {
    fn from(v: VersionStatus) -> Self {
        let pid = std::process::id();
        let memory = resident_memory_bytes("self");
        let settings = v.settings;
        Self {
            model_name: v.name,
            model_version: v.version,
            model_url: v.url,
            engine: v.engine,
            runtime: if v.hosted { v.engine } else { "oxserve" },
            handler: v.handler,
            min_workers: settings.min_workers,
            max_workers: settings.max_workers,
            batch_size: settings.batch_size,
            max_batch_delay: millis(settings.max_batch_delay),
            response_timeout: settings.response_timeout.as_secs(),
            device_type: match settings.device_type {
                DeviceType::Cpu => "cpu",
                DeviceType::Gpu => "gpu",
            },
            loaded_at_startup: v.loaded_at_startup,
            use_venv: settings.use_venv,
            intra_op_threads: v.intra_op_threads,
            workers: v
                .workers
                .into_iter()
                .map(|w| WorkerDescription {
                    id: w.id,
                    start_time: chrono::DateTime::<chrono::Utc>::from(w.started_at)
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    status: w.status.as_str(),
                    memory_usage: w.pid.map_or(memory, |p| resident_memory_bytes(&p.to_string())),
                    pid: w.pid.unwrap_or(pid),
                    gpu: w.device.is_gpu(),
                    device: w.device.to_string(),
                    gpu_usage: "N/A",
                })
                .collect(),
            job_queue_status: JobQueueStatus {
                remaining_capacity: v.capacity.saturating_sub(v.pending),
                pending_requests: v.pending,
            },
            customized_metadata: None,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Resident memory of a process (`self` or a pid), from `/proc/<pid>/statm` (0 where that is not
/// available).
fn resident_memory_bytes(pid: &str) -> u64 {
    let pages = std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .unwrap_or(0);
    pages * 4096
}
