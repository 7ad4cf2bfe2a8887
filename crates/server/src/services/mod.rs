//! What each API does, apart from how it is spelled on the wire. The HTTP handlers and the gRPC
//! services parse their requests into these calls' arguments and write the answers in their own
//! formats, so a rule (a default, a check, an error) exists once for both transports.

pub(crate) mod management;
pub(crate) mod oip;
pub(crate) mod triton;

use crate::AppState;

/// Whether the server should get traffic: not draining, and every model has its minimum workers
/// ready (TorchServe's `/ping`, OIP's `/v2/health/ready`, gRPC's Ping and ServerReady).
pub(crate) fn server_ready(state: &AppState) -> bool {
    !state.draining.load(std::sync::atomic::Ordering::Acquire) && state.registry.is_healthy()
}
