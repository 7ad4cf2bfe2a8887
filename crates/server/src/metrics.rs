//! `GET /metrics`: every metric family in the Prometheus text format; `?name[]=` keeps only the
//! named families. Read-style gauges (queue depth, host usage) are brought up to date per scrape.

use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::IntoResponse;

use crate::AppState;

/// Names selected by `name[]=a&name[]=b` (also `name=`); empty means all.
fn selected(query: Option<&str>) -> Vec<String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| matches!(*k, "name[]" | "name%5B%5D" | "name"))
        .map(|(_, v)| v.to_owned())
        .collect()
}

/// `GET /metrics`
pub(crate) async fn metrics(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> impl IntoResponse {
    let wanted = selected(query.as_deref());
    let registry = std::sync::Arc::clone(&state.registry);
    let jobs = state.jobs.clone();
    // Sampling host usage reads /proc; keep it off the async workers.
    let text = tokio::task::spawn_blocking(move || {
        registry.refresh_gauges(false);
        let mut text = registry.metrics().render(&wanted);
        if let Some(jobs) = jobs {
            text.push_str(&crate::comprehend_jobs::metrics(&jobs, &wanted));
        }
        text
    })
    .await
    .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}

#[cfg(test)]
mod tests {
    use super::selected;

    #[test]
    fn name_filters() {
        assert_eq!(selected(Some("name[]=a&name%5B%5D=b&other=c")), ["a", "b"]);
        assert!(selected(None).is_empty());
    }
}
