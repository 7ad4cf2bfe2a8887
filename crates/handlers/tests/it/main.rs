//! The built-in handlers on real models, and the fuzz corpus replayed on stable.
//!
//! One test binary per crate (each links the whole dependency tree once); each module is one
//! area, run alone with `cargo test --test it <module>::`.

mod fuzz_corpus;
mod text_handlers;
