//! ONNX Runtime against tract on the same models, and the library set-up's errors.
//!
//! One test binary per crate (each links the whole dependency tree once); each module is one
//! area, run alone with `cargo test --test it <module>::`.

mod roundtrip;
