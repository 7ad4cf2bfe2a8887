//! The serving core with the real tract engine: batching, scaling, cancellation, remote models.
//!
//! One test binary per crate (each links the whole dependency tree once); each module is one
//! area, run alone with `cargo test --test it <module>::`.

mod engine;
mod remote;
