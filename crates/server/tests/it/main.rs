//! oxserve-server's integration tests: real servers on loopback port 0, real models, real clients.
//!
//! One test binary per crate (each links the whole dependency tree once); each module is one
//! area, run alone with `cargo test --test it <module>::`.

mod auth;
mod binary_tensors;
mod common;
mod comprehend;
mod engines;
mod fuzz_corpus;
mod grpc;
mod handlers_text;
mod handlers_vision;
mod http;
mod interop_tritonclient;
mod limits;
mod malformed;
mod management;
mod observability;
mod python_workers;
mod triton_extensions;
