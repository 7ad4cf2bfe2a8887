//! The model store: where models come from before the serving core loads them.
//!
//! [`archive`] reads and writes TorchServe's `.mar` layout (zip, `.tar.gz` or a folder with a
//! `MAR-INF/MANIFEST.json`), hardened against hostile archives; [`remote`] fetches a model from a
//! URL the operator allowed into the store. Neither knows about engines, queues or handlers, so
//! tools that only pack or inspect archives need nothing else.

pub mod archive;
pub mod listing;
pub mod remote;
