//! Log setup: lines on stderr, filtered by `RUST_LOG` (default `info`). `OXSERVE_LOG_FORMAT=json`
//! writes one JSON object per line with the span fields (the request id among them), for log
//! collectors; the default is human-readable text with the same fields.

use tracing_subscriber::EnvFilter;

pub(crate) fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("OXSERVE_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().flatten_event(true).try_init() } else { builder.try_init() };
}
