//! `ab_report.csv`: one header row and one value row with the columns of TorchServe's
//! `benchmark-ab.py`, in its order, so scripts and spreadsheets built for it read ours.
//!
//! TorchServe fills the model and queue columns by scraping its metric logs; here they come from
//! the `Server-Timing` headers oxserve sends (PredictionTime is the engine stage, QueueTime the
//! queue stage, HandlerTime preprocess + inference + postprocess), or from the `ts_*` counters of
//! `/metrics` for servers without the header (means only). Unknown values are left empty.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::result::BenchResult;

/// TorchServe's `ab_report.csv` columns, in order.
pub const COLUMNS: [&str; 30] = [
    "Benchmark",
    "TS failed requests",
    "TS throughput",
    "TS latency P50",
    "TS latency P90",
    "TS latency P99",
    "TS latency mean",
    "TS error rate",
    "Batch size",
    "Batch delay",
    "Workers",
    "Model",
    "Concurrency",
    "Input",
    "Requests",
    "Model_p50",
    "Model_p90",
    "Model_p99",
    "Queue time p50",
    "Queue time p90",
    "Queue time p99",
    "predict_mean",
    "handler_time_mean",
    "waiting_time_mean",
    "worker_thread_mean",
    "cpu_percentage_mean",
    "memory_percentage_mean",
    "gpu_percentage_mean",
    "gpu_memory_percentage_mean",
    "gpu_memory_used_mean",
];

/// The server settings a run was made with; TorchServe's report echoes them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSettings {
    /// Batch size the model was registered with, when known.
    pub batch_size: Option<usize>,
    /// Batch delay in ms, when known.
    pub batch_delay: Option<u64>,
    /// Workers, when known.
    pub workers: Option<usize>,
    /// The model (archive or URL).
    pub model: String,
    /// The input file(s).
    pub input: String,
}

fn num(v: f64) -> String {
    format!("{v:.3}")
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The value row for `result`, in [`COLUMNS`] order.
pub fn row(result: &BenchResult, settings: &RunSettings) -> Vec<String> {
    let stage = |name: &str| result.server_timing.get(name);
    let pct = |name: &str, f: fn(&crate::stats::Latency) -> f64| {
        stage(name).map(f).map(num).unwrap_or_default()
    };
    let counts = result.server_counts.as_ref();
    let predict_mean = stage("inference").map(|s| s.mean);
    let queue_mean =
        stage("queue").map(|s| s.mean).or_else(|| counts.and_then(|c| c.mean_queue_ms()));
    let handler_mean = ["preprocess", "inference", "postprocess"]
        .iter()
        .map(|s| stage(s).map(|l| l.mean))
        .sum::<Option<f64>>()
        .or_else(|| counts.and_then(|c| c.mean_latency_ms()).zip(queue_mean).map(|(t, q)| t - q));
    // TorchServe's WorkerThreadTime is the frontend's time around the backend call; the closest
    // figure here is what the total leaves once queue and handler time are taken out.
    let worker_thread_mean = stage("total")
        .map(|t| t.mean)
        .zip(queue_mean)
        .zip(handler_mean)
        .map(|((t, q), h)| (t - q - h).max(0.0));
    let g = &result.generator;
    let mut values = vec![
        "AB".to_owned(),
        result.failed.to_string(),
        num(result.throughput_rps),
        num(result.latency_ms.p50),
        num(result.latency_ms.p90),
        num(result.latency_ms.p99),
        num(result.latency_ms.mean),
        num(result.error_rate_percent()),
        opt(settings.batch_size),
        opt(settings.batch_delay),
        opt(settings.workers),
        settings.model.clone(),
        result.concurrency.to_string(),
        settings.input.clone(),
        result.requests.to_string(),
        pct("inference", |l| l.p50),
        pct("inference", |l| l.p90),
        pct("inference", |l| l.p99),
        pct("queue", |l| l.p50),
        pct("queue", |l| l.p90),
        pct("queue", |l| l.p99),
    ];
    values.extend(
        [
            predict_mean,
            handler_mean,
            queue_mean,
            worker_thread_mean,
            g.host_cpu_percent,
            g.host_memory_percent,
        ]
        .into_iter()
        .map(|v| v.map(num).unwrap_or_default()),
    );
    // No GPU metrics are collected; TorchServe writes 0.0 when its GPU logs are empty.
    values.extend(["0.0", "0.0", "0.0"].map(str::to_owned));
    values
}

/// Writes `ab_report.csv` (header and one row per result) to `path`.
///
/// # Errors
/// The file cannot be written.
pub fn write(path: &Path, rows: &[Vec<String>]) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut writer = csv::Writer::from_writer(std::io::BufWriter::new(file));
    writer.write_record(COLUMNS)?;
    for row in rows {
        writer.write_record(row)?;
    }
    writer.flush()?;
    writer.into_inner().map_err(|e| anyhow::anyhow!("{}", e.error()))?.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_matches_the_columns() {
        let mut result = BenchResult { requests: 10, failed: 1, ..BenchResult::default() };
        result.server_timing.insert(
            "inference".into(),
            crate::stats::Latency { mean: 2.0, p50: 1.5, ..Default::default() },
        );
        let settings =
            RunSettings { batch_size: Some(4), model: "tiny".into(), ..Default::default() };
        let row = row(&result, &settings);
        assert_eq!(row.len(), COLUMNS.len());
        let at = |c: &str| row[COLUMNS.iter().position(|x| *x == c).unwrap()].clone();
        assert_eq!(at("TS error rate"), "10.000");
        assert_eq!(at("Batch size"), "4");
        assert_eq!(at("Workers"), "");
        assert_eq!(at("Model_p50"), "1.500");
        assert_eq!(at("predict_mean"), "2.000");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ab_report.csv");
        write(&path, &[row]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("Benchmark,TS failed requests,TS throughput,TS latency P50,"));
    }
}
