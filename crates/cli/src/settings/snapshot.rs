//! TorchServe's `model_snapshot` key: the models a server starts with, their versions and settings,
//! as one JSON value. KServe's TorchServe layout (`/mnt/models/config/config.properties`) names its
//! models this way rather than with `load_models`.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use oxserve_core::config::ModelOverrides;
use serde::Deserialize;

use super::StartupModel;

/// `{"name": "startup.cfg", "modelCount": 1, "models": {"mnist": {"1.0": {"marName": "mnist.mar",
/// "defaultVersion": true, "minWorkers": 1, …}}}}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Snapshot {
    #[serde(default)]
    model_count: Option<usize>,
    #[serde(default)]
    models: BTreeMap<String, BTreeMap<String, ModelOverrides>>,
}

/// What a snapshot asks for at startup.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct StartupSnapshot {
    /// Each version's archive, loaded under the model's name.
    pub(crate) load: Vec<StartupModel>,
    /// Per-version settings, as the `models` key gives them.
    pub(crate) models: BTreeMap<String, BTreeMap<String, ModelOverrides>>,
    /// `(model, version)` pairs marked `defaultVersion`.
    pub(crate) defaults: Vec<(String, String)>,
}

/// Parses a `model_snapshot` value. Every version must name its archive (`marName`): a snapshot that
/// cannot be loaded as written is refused at startup rather than served with models missing.
pub(crate) fn parse(json: &str) -> anyhow::Result<StartupSnapshot> {
    let snapshot: Snapshot = serde_json::from_str(json)
        .context("invalid `model_snapshot` value in config.properties")?;
    let versions: usize = snapshot.models.values().map(BTreeMap::len).sum();
    if let Some(count) = snapshot.model_count
        && count != snapshot.models.len()
    {
        tracing::warn!(
            model_count = count,
            models = snapshot.models.len(),
            "model_snapshot's modelCount does not match its models; loading the models it lists"
        );
    }
    let mut out = StartupSnapshot::default();
    for (name, by_version) in &snapshot.models {
        for (version, settings) in by_version {
            let Some(mar) = settings.mar_name.as_deref().map(str::trim).filter(|m| !m.is_empty())
            else {
                bail!("model_snapshot: model `{name}` version `{version}` has no marName");
            };
            out.load.push(StartupModel::One { name: Some(name.clone()), url: mar.to_owned() });
            if settings.default_version == Some(true) {
                out.defaults.push((name.clone(), version.clone()));
            }
        }
    }
    if versions == 0 {
        tracing::warn!("model_snapshot lists no models");
    }
    out.models = snapshot.models;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kserve_snapshot_loads_each_version_with_its_settings() {
        let s = parse(
            r#"{"name":"startup.cfg","modelCount":1,"models":{"mnist":{
                "1.0":{"defaultVersion":true,"marName":"mnist.mar","minWorkers":1,"maxWorkers":5,
                       "batchSize":4,"maxBatchDelay":10,"responseTimeout":120},
                "2.0":{"marName":"mnist_v2.mar"}}}}"#,
        )
        .unwrap();
        assert_eq!(
            s.load,
            vec![
                StartupModel::One { name: Some("mnist".into()), url: "mnist.mar".into() },
                StartupModel::One { name: Some("mnist".into()), url: "mnist_v2.mar".into() },
            ]
        );
        assert_eq!(s.defaults, vec![("mnist".to_owned(), "1.0".to_owned())]);
        let v1 = &s.models["mnist"]["1.0"];
        assert_eq!((v1.min_workers, v1.max_workers, v1.batch_size), (Some(1), Some(5), Some(4)));
        assert_eq!((v1.max_batch_delay, v1.response_timeout), (Some(10), Some(120)));
    }

    #[test]
    fn a_version_without_an_archive_or_bad_json_is_refused() {
        let e = parse(r#"{"models":{"m":{"1.0":{"minWorkers":1}}}}"#).unwrap_err();
        assert!(e.to_string().contains("`m` version `1.0` has no marName"), "{e}");
        let e = parse("{\"models\": [").unwrap_err();
        assert!(e.to_string().contains("model_snapshot"), "{e}");
    }
}
