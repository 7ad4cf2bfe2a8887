//! Fuzz target bodies; see `targets.rs`.

#[path = "targets.rs"]
pub mod targets;

#[path = "server_targets.rs"]
pub mod server_targets;
