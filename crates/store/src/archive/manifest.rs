//! `MAR-INF/MANIFEST.json`, the file that tells TorchServe (and oxserve) what is in an archive.
//!
//! The shape follows torch-model-archiver 0.12 and TorchServe's `Manifest.java`. Unknown keys are
//! kept in `extra` maps so reading and re-writing a manifest loses nothing, and every path the
//! manifest names is checked to stay inside the model folder (TorchServe never checked
//! `configFile` or `requirementsFile`, which allowed arbitrary file reads).

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{ArchiveError, safe_relative_path, validate_model_name};

/// Where the manifest lives inside an archive or model folder.
pub const MANIFEST_PATH: &str = "MAR-INF/MANIFEST.json";
/// The `archiverVersion` written by [`super::pack`]: the TorchServe release whose format we match.
pub const ARCHIVER_VERSION: &str = "0.12.0";
/// `createdOn`'s format (chrono `strftime` syntax), as torch-model-archiver writes it.
pub const CREATED_ON_FORMAT: &str = "%d/%m/%Y %H:%M:%S";
/// The runtime written by default; TorchServe's Java reader accepts `python`, `python3` and `LSP`.
pub const DEFAULT_RUNTIME: &str = "python";
/// The model version used when none is given.
pub const DEFAULT_VERSION: &str = "1.0";
/// Largest manifest read, so a hostile file cannot exhaust memory.
pub(crate) const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// TorchServe's `MAR-INF/MANIFEST.json`. Fields that are `None` are left out when written, as
/// torch-model-archiver does; unknown keys are kept in `extra`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// When the archive was made, formatted with [`CREATED_ON_FORMAT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_on: Option<String>,
    /// The handler runtime; TorchServe requires it, oxserve ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// The model's own entries.
    pub model: ManifestModel,
    /// The torch-model-archiver version that wrote the archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archiver_version: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Keys this struct does not know, kept for round trips.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `model` object of a [`Manifest`]. Paths are relative to the model folder.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManifestModel {
    /// The name the model is registered under.
    pub model_name: String,
    /// The weights file, e.g. `model.onnx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serialized_file: Option<String>,
    /// A handler name (`image_classifier`) or a handler file (`handler.py`, `handler.py:fn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// The Python model definition for eager PyTorch models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_file: Option<String>,
    /// The model's version string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// A pip requirements file (never run by oxserve).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements_file: Option<String>,
    /// `model-config.yaml`: workers, batching and handler settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_file: Option<String>,
    /// Extra handler modules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<String>,
    /// A request envelope name (`json`, `kserve`, `kservev2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<String>,
    /// Keys this struct does not know, kept for round trips.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Manifest {
    /// A manifest as [`super::pack`] writes it: `createdOn` now (local time), the given runtime
    /// and [`ARCHIVER_VERSION`].
    pub fn new(model: ManifestModel, runtime: impl Into<String>) -> Self {
        Self {
            created_on: Some(chrono::Local::now().format(CREATED_ON_FORMAT).to_string()),
            runtime: Some(runtime.into()),
            model,
            archiver_version: Some(ARCHIVER_VERSION.to_owned()),
            description: None,
            extra: Map::new(),
        }
    }

    /// The manifest assumed for a source that has none: a folder, an archive without
    /// `MAR-INF/MANIFEST.json`, or a bare `.onnx` file.
    pub fn synthesized(model_name: impl Into<String>, serialized_file: impl Into<String>) -> Self {
        Self {
            created_on: None,
            runtime: Some(DEFAULT_RUNTIME.to_owned()),
            model: ManifestModel {
                model_name: model_name.into(),
                serialized_file: Some(serialized_file.into()),
                model_version: Some(DEFAULT_VERSION.to_owned()),
                ..ManifestModel::default()
            },
            archiver_version: None,
            description: None,
            extra: Map::new(),
        }
    }

    /// Parses and [validates](Self::validate) manifest JSON; `source` names the model source in
    /// errors.
    ///
    /// # Errors
    ///
    /// [`ArchiveError::InvalidManifest`] when the JSON is malformed or fails validation.
    pub fn from_json(bytes: &[u8], source: &Path) -> Result<Self, ArchiveError> {
        let invalid =
            |reason: String| ArchiveError::InvalidManifest { path: source.to_path_buf(), reason };
        let manifest: Self = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        manifest.validate().map_err(invalid)?;
        Ok(manifest)
    }

    /// The manifest as pretty-printed JSON, the way torch-model-archiver writes it.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self)
            .expect("a manifest always serialises: it holds only strings and JSON values")
    }

    /// Checks the model name and that every path the manifest names is a plain relative path
    /// inside the model folder (no `..`, no absolute or drive paths). Returns the reason on
    /// failure.
    ///
    /// # Errors
    ///
    /// A human-readable reason naming the offending key.
    pub fn validate(&self) -> Result<(), String> {
        let model = &self.model;
        validate_model_name(&model.model_name).map_err(|e| e.to_string())?;
        let paths = [
            ("serializedFile", model.serialized_file.as_deref()),
            ("modelFile", model.model_file.as_deref()),
            ("requirementsFile", model.requirements_file.as_deref()),
            ("configFile", model.config_file.as_deref()),
            ("extensions", model.extensions.as_deref()),
            ("envelope", model.envelope.as_deref()),
            ("handler", model.handler_file()),
        ];
        for (key, value) in paths {
            if let Some(value) = value {
                safe_relative_path(value)
                    .map_err(|reason| format!("model.{key} `{value}` {reason}"))?;
            }
        }
        Ok(())
    }
}

impl ManifestModel {
    /// The model version: `modelVersion`, or the older `version` key TorchServe also reads.
    pub fn version(&self) -> Option<&str> {
        self.model_version.as_deref().or_else(|| self.extra.get("version").and_then(Value::as_str))
    }

    /// The file part of `handler`: `handler.py` for `handler.py:fn`, the whole value otherwise.
    pub fn handler_file(&self) -> Option<&str> {
        let handler = self.handler.as_deref()?;
        Some(split_handler(handler).0)
    }
}

/// Splits a handler into its file or module part and an optional `:function` suffix.
pub(crate) fn split_handler(handler: &str) -> (&str, Option<&str>) {
    match handler.rsplit_once(':') {
        Some((file, function)) => (file, Some(function)),
        None => (handler, None),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;

    fn full_model() -> ManifestModel {
        ManifestModel {
            model_name: "resnet".to_owned(),
            serialized_file: Some("model.onnx".to_owned()),
            handler: Some("image_classifier".to_owned()),
            model_version: Some("2.0".to_owned()),
            config_file: Some("model-config.yaml".to_owned()),
            ..ManifestModel::default()
        }
    }

    #[test]
    fn json_shape_matches_torch_model_archiver() {
        let manifest = Manifest::new(full_model(), "python");
        let value: Value = serde_json::from_str(&manifest.to_json_pretty()).expect("valid json");
        let obj = value.as_object().expect("object");
        let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
        assert_eq!(keys, BTreeSet::from(["archiverVersion", "createdOn", "model", "runtime"]));
        assert_eq!(obj["runtime"], "python");
        assert_eq!(obj["archiverVersion"], "0.12.0");
        assert_eq!(
            obj["model"],
            json!({
                "modelName": "resnet",
                "serializedFile": "model.onnx",
                "handler": "image_classifier",
                "modelVersion": "2.0",
                "configFile": "model-config.yaml",
            })
        );
        let created = obj["createdOn"].as_str().expect("string");
        assert!(
            chrono::NaiveDateTime::parse_from_str(created, CREATED_ON_FORMAT).is_ok(),
            "{created}"
        );
        // dd/mm/YYYY HH:MM:SS
        let bytes = created.as_bytes();
        assert_eq!((bytes.len(), bytes[2], bytes[5], bytes[10]), (19, b'/', b'/', b' '));
    }

    #[test]
    fn none_fields_are_omitted() {
        let manifest = Manifest::synthesized("m", "m.onnx");
        let value = serde_json::to_value(&manifest).expect("serialises");
        assert_eq!(
            value,
            json!({
                "runtime": "python",
                "model": {"modelName": "m", "serializedFile": "m.onnx", "modelVersion": "1.0"},
            })
        );
    }

    #[test]
    fn reads_a_torchserve_manifest_and_keeps_unknown_keys() {
        let text = json!({
            "createdOn": "21/08/2024 10:11:12",
            "runtime": "python",
            "model": {
                "modelName": "densenet161",
                "serializedFile": "densenet161-8d451a50.pth",
                "handler": "image_classifier",
                "modelFile": "model.py",
                "modelVersion": "1.0",
                "customModelKey": {"nested": [1, 2]},
            },
            "archiverVersion": "0.12.0",
            "userData": "kept",
        })
        .to_string();
        let manifest = Manifest::from_json(text.as_bytes(), Path::new("x.mar")).expect("parses");
        assert_eq!(manifest.model.model_name, "densenet161");
        assert_eq!(manifest.model.model_file.as_deref(), Some("model.py"));
        assert_eq!(manifest.extra["userData"], "kept");
        assert_eq!(manifest.model.extra["customModelKey"], json!({"nested": [1, 2]}));
        let again: Value = serde_json::from_str(&manifest.to_json_pretty()).expect("json");
        let original: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(again, original);
    }

    #[test]
    fn reads_the_older_version_key() {
        let text = r#"{"model": {"modelName": "m", "version": "3"}}"#;
        let manifest = Manifest::from_json(text.as_bytes(), Path::new("m")).expect("parses");
        assert_eq!(manifest.model.version(), Some("3"));
        assert_eq!(manifest.runtime, None);
    }

    #[test]
    fn refuses_paths_that_escape_the_model_folder() {
        let cases = [
            json!({"modelName": "m", "serializedFile": "../../etc/passwd"}),
            json!({"modelName": "m", "configFile": "/etc/passwd"}),
            json!({"modelName": "m", "requirementsFile": "a/../../r.txt"}),
            json!({"modelName": "m", "handler": "../h.py:handle"}),
            json!({"modelName": "m", "modelFile": "C:\\model.py"}),
            json!({"modelName": "../m"}),
        ];
        for model in cases {
            let text = json!({ "model": model }).to_string();
            let err = Manifest::from_json(text.as_bytes(), Path::new("src.mar")).expect_err(&text);
            assert!(
                matches!(&err, ArchiveError::InvalidManifest { path, .. } if path == &PathBuf::from("src.mar")),
                "{err}"
            );
        }
    }

    #[test]
    fn refuses_malformed_json() {
        for text in ["", "{", "[]", r#"{"model": {}}"#, r#"{"runtime": "python"}"#] {
            assert!(Manifest::from_json(text.as_bytes(), Path::new("m")).is_err(), "{text}");
        }
    }

    #[test]
    fn handler_file_strips_the_function() {
        let mut model = full_model();
        model.handler = Some("my_handler.py:handle".to_owned());
        assert_eq!(model.handler_file(), Some("my_handler.py"));
        model.handler = Some("image_classifier".to_owned());
        assert_eq!(model.handler_file(), Some("image_classifier"));
        model.handler = None;
        assert_eq!(model.handler_file(), None);
    }
}
