//! TorchServe's metric log files: `ts_metrics.log` (frontend and system metrics) and
//! `model_metrics.log` (per-request handler metrics), plus `access_log.log`.
//!
//! Lines follow TorchServe's log4j pattern `%d{ISO8601} - %m`:
//!
//! ```text
//! 2026-11-25T12:21:59,143 - QueueTime.Milliseconds:0.42|#Level:Host|#hostname:vm,timestamp:1795609319
//! 2026-11-25T12:21:59,143 - PredictionTime.ms:1.93|#ModelName:tiny,Level:Model|#hostname:vm,requestID:3f…,timestamp:1795609319
//! ```
//!
//! so TorchServe's benchmark scraper, which takes `line.split("|")[0].split(":")[3]`, reads the
//! value. Writes go through `tracing-appender`'s non-blocking writer: the request path only copies
//! the line into a bounded channel, and a writer thread does the file I/O (lines are dropped, never
//! waited for, if the disk cannot keep up).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};

/// The three log files of one server.
#[derive(Debug)]
pub struct MetricLog {
    dir: PathBuf,
    ts_metrics: NonBlocking,
    model_metrics: NonBlocking,
    access: NonBlocking,
    /// Flush and stop the writer threads when the log is dropped.
    _guards: [WorkerGuard; 3],
}

fn open(dir: &Path, name: &str) -> std::io::Result<(NonBlocking, WorkerGuard)> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(name))?;
    Ok(NonBlockingBuilder::default().lossy(true).thread_name("oxserve-metric-log").finish(file))
}

/// `2026-11-25T12:21:59,143`, TorchServe's log4j ISO8601 timestamp (local time, comma before millis).
fn timestamp() -> String {
    chrono::Local::now().format("%Y-%m-%dT%H:%M:%S,%3f").to_string()
}

fn epoch() -> i64 {
    chrono::Utc::now().timestamp()
}

impl MetricLog {
    /// Creates `dir` if needed and opens the three files for appending.
    ///
    /// # Errors
    /// When the folder or a file cannot be created.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let (ts_metrics, g1) = open(dir, "ts_metrics.log")?;
        let (model_metrics, g2) = open(dir, "model_metrics.log")?;
        let (access, g3) = open(dir, "access_log.log")?;
        Ok(Self {
            dir: dir.to_path_buf(),
            ts_metrics,
            model_metrics,
            access,
            _guards: [g1, g2, g3],
        })
    }

    /// The folder holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A frontend or system metric line in `ts_metrics.log`.
    pub fn frontend(&self, name: &str, unit: &str, value: f64, dims: &[(&str, &str)], host: &str) {
        let line = format_line(name, unit, value, dims, host, None);
        let _ = self.ts_metrics.clone().write_all(line.as_bytes());
    }

    /// A model metric line in `model_metrics.log`.
    pub fn model(
        &self,
        name: &str,
        unit: &str,
        value: f64,
        dims: &[(&str, &str)],
        host: &str,
        request_id: Option<&str>,
    ) {
        let line = format_line(name, unit, value, dims, host, request_id);
        let _ = self.model_metrics.clone().write_all(line.as_bytes());
    }

    /// An access log line: `<ts> - /<peer> "<METHOD> <path> <version>" <status> <millis>`.
    pub fn access(&self, peer: &str, request_line: &str, status: u16, millis: u128) {
        let line = format!("{} - /{peer} \"{request_line}\" {status} {millis}\n", timestamp());
        let _ = self.access.clone().write_all(line.as_bytes());
    }
}

/// One metric line in TorchServe's format.
pub fn format_line(
    name: &str,
    unit: &str,
    value: f64,
    dims: &[(&str, &str)],
    host: &str,
    request_id: Option<&str>,
) -> String {
    let mut line = format!("{} - {name}.{unit}:{value}|#", timestamp());
    for (i, (k, v)) in dims.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(line, "{sep}{k}:{v}");
    }
    let _ = write!(line, "|#hostname:{host},");
    if let Some(id) = request_id {
        let _ = write!(line, "requestID:{id},");
    }
    let _ = writeln!(line, "timestamp:{}", epoch());
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TorchServe's benchmark reads metric values this way (benchmark-ab.py).
    fn scrape(line: &str) -> f64 {
        line.split('|').next().unwrap().split(':').nth(3).unwrap().parse().unwrap()
    }

    #[test]
    fn lines_parse_like_torchserve_s_benchmark_scraper() {
        let line = format_line("QueueTime", "Milliseconds", 1.25, &[("Level", "Host")], "vm", None);
        assert_eq!(scrape(&line), 1.25);
        assert!(
            line.contains(" - QueueTime.Milliseconds:1.25|#Level:Host|#hostname:vm,timestamp:"),
            "{line}"
        );
        let line = format_line(
            "PredictionTime",
            "ms",
            3.0,
            &[("ModelName", "m"), ("Level", "Model")],
            "vm",
            Some("abc"),
        );
        assert_eq!(scrape(&line), 3.0);
        assert!(
            line.contains("|#ModelName:m,Level:Model|#hostname:vm,requestID:abc,timestamp:"),
            "{line}"
        );
        // The timestamp has exactly two colons, as the scraper assumes.
        assert_eq!(line.split(" - ").next().unwrap().matches(':').count(), 2);
    }
}
