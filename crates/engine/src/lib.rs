//! The serving core of oxserve.
pub mod archive;
