//! One module per subcommand; each has an `…Args` struct and a `run` function.

pub(crate) mod archive;
pub(crate) mod bench;
pub(crate) mod job;
mod job_model;
pub(crate) mod redact;
pub(crate) mod serve;
pub(crate) mod torchserve;
pub(crate) mod tune;
