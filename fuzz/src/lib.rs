//! Fuzz target bodies; see `targets.rs`.

#[path = "targets.rs"]
pub mod targets;
