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

/// Parses a `model_snapshot` value into the startup models it names. Every version must name its
/// archive (`marName`): a snapshot that cannot be loaded as written is refused at startup rather
/// than served with models missing. The version keys only label the entries, as in TorchServe: the
/// version served is the archive's own.
pub(crate) fn parse(json: &str) -> anyhow::Result<Vec<StartupModel>> {
    let snapshot: Snapshot = serde_json::from_str(json)
        .context("invalid `model_snapshot` value in config.properties")?;
    if let Some(count) = snapshot.model_count
        && count != snapshot.models.len()
    {
        tracing::warn!(
            model_count = count,
            models = snapshot.models.len(),
            "model_snapshot's modelCount does not match its models; loading the models it lists"
        );
    }
    let mut load = Vec::new();
    for (name, by_version) in snapshot.models {
        for (version, mut settings) in by_version {
            let Some(mar) =
                settings.mar_name.take().map(|m| m.trim().to_owned()).filter(|m| !m.is_empty())
            else {
                bail!("model_snapshot: model `{name}` version `{version}` has no marName");
            };
            let default = settings.default_version.take() == Some(true);
            load.push(StartupModel::Snapshot {
                name: name.clone(),
                url: mar,
                overrides: Box::new(settings),
                default,
            });
        }
    }
    if load.is_empty() {
        tracing::warn!("model_snapshot lists no models");
    }
    Ok(load)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kserve_snapshot_loads_each_version_with_its_settings() {
        let load = parse(
            r#"{"name":"startup.cfg","modelCount":1,"models":{"mnist":{
                "1.0":{"defaultVersion":true,"marName":"mnist.mar","minWorkers":1,"maxWorkers":5,
                       "batchSize":4,"maxBatchDelay":10,"responseTimeout":120},
                "2.0":{"marName":"mnist_v2.mar"}}}}"#,
        )
        .unwrap();
        let [
            StartupModel::Snapshot { name, url, overrides, default: true },
            StartupModel::Snapshot { url: url2, default: false, .. },
        ] = &load[..]
        else {
            panic!("{load:?}")
        };
        assert_eq!(
            (name.as_str(), url.as_str(), url2.as_str()),
            ("mnist", "mnist.mar", "mnist_v2.mar")
        );
        let o = overrides;
        assert_eq!((o.min_workers, o.max_workers, o.batch_size), (Some(1), Some(5), Some(4)));
        assert_eq!((o.max_batch_delay, o.response_timeout), (Some(10), Some(120)));
        assert_eq!((o.mar_name.as_deref(), o.default_version), (None, None));
    }

    #[test]
    fn a_version_without_an_archive_or_bad_json_is_refused() {
        let e = parse(r#"{"models":{"m":{"1.0":{"minWorkers":1}}}}"#).unwrap_err();
        assert!(e.to_string().contains("`m` version `1.0` has no marName"), "{e}");
        let e = parse("{\"models\": [").unwrap_err();
        assert!(e.to_string().contains("model_snapshot"), "{e}");
    }
}
