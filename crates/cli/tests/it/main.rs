//! The `oxserve` binary's integration tests: the real executable, started as a user would.
//!
//! One test binary per crate (each links the whole dependency tree once); each module is one
//! area, run alone with `cargo test --test it <module>::`.

mod archive_cli;
mod bench_cli;
mod cluster;
mod job_cli;
mod peers;
mod python_cli;
mod redact_cli;
mod serve_cli;
mod tls_cli;
mod tune_cli;
