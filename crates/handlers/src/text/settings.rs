//! Reading a text handler's settings from `model-config.yaml`.
//!
//! TorchServe keeps handler settings in the same file as the frontend's (its handlers read
//! `context.model_yaml_config`), usually under a `handler:` section. A key is looked up there
//! first, then at the top level, so both layouts work.

use serde_json::{Map, Value};

/// The handler's view of the model-config keys the serving core does not use.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    config: &'a Map<String, Value>,
}

impl<'a> Settings<'a> {
    /// Wraps the keys a [`oxserve_core::handler::HandlerContext`] carries.
    pub fn new(config: &'a Map<String, Value>) -> Self {
        Self { config }
    }

    /// The value of `key`: under `handler:`, else at the top level.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.config
            .get("handler")
            .and_then(Value::as_object)
            .and_then(|section| section.get(key))
            .or_else(|| self.config.get(key))
    }

    /// A string setting.
    ///
    /// # Errors
    /// When the key holds something else.
    pub fn string(&self, key: &str) -> Result<Option<&'a str>, String> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(format!("`{key}` must be a string, got {other}")),
        }
    }

    /// A non-negative integer setting.
    ///
    /// # Errors
    /// When the key holds something else.
    pub fn usize(&self, key: &str) -> Result<Option<usize>, String> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| format!("`{key}` must be a whole number, got {v}")),
        }
    }

    /// A boolean setting (YAML `true`/`false`).
    ///
    /// # Errors
    /// When the key holds something else.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(format!("`{key}` must be true or false, got {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Settings;

    #[test]
    fn handler_section_wins_over_top_level() {
        let config =
            serde_json::json!({"max_length": 8, "top_k": 2, "handler": {"max_length": 64}});
        let settings = Settings::new(config.as_object().expect("object"));
        assert_eq!(settings.usize("max_length"), Ok(Some(64)));
        assert_eq!(settings.usize("top_k"), Ok(Some(2)));
        assert_eq!(settings.usize("missing"), Ok(None));
        assert!(settings.string("top_k").is_err());
        assert!(settings.bool("max_length").is_err());
    }
}
