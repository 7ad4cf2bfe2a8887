//! oxserve's benchmark and tuning suite.
//!
//! - [`load`]: the load generator behind `oxserve bench` (closed and open loop, HDR histograms,
//!   `Server-Timing` and `/metrics` read back from the server).
//! - [`ab_report`]: `ab_report.csv` with TorchServe's benchmark columns, in its order.
//! - [`sweep`]: the `oxserve tune` configuration (TorchServe's auto_benchmark model YAML plus
//!   SLA, engines and rates) expanded into cases.
//! - [`choose`]: the pure choice of the recommended configuration under a P99 SLA.
//! - [`target`]: the server under test: an oxserve started for the sweep, or any running
//!   TorchServe-compatible server driven through its management API.
//! - [`timeline`]: throughput and latency window by window over a run.
//! - [`tune`]: runs a sweep; [`report`] and [`chart`] write `report.md` and its charts.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use oxserve_bench::load::{self, Input, LoadConfig, Stop};
//! let config = LoadConfig {
//!     url: "http://127.0.0.1:8080".into(),
//!     model: "tiny".into(),
//!     inputs: vec![Input { name: "tiny.json".into(), body: std::fs::read("tiny.json")?.into() }],
//!     stop: Stop::Requests(1000),
//!     ..LoadConfig::default()
//! };
//! let result = load::run(&config, &oxserve_bench::indicatif::ProgressBar::hidden()).await?;
//! println!("{}", result.summary());
//! # Ok(()) }
//! ```

pub mod ab_report;
pub mod chart;
pub mod choose;
pub mod load;
pub mod machine;
pub mod report;
pub mod result;
pub mod scrape;
pub mod stats;
pub mod sweep;
pub mod target;
pub mod timeline;
pub mod tune;
mod v2;

pub use indicatif;
