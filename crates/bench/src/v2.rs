//! Turns a plain JSON input (the nested list a TorchServe request carries) into an Open Inference
//! Protocol request, so one input file benches both protocols.

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::load::LoadConfig;

/// The body to send: `raw` itself when it already is an OIP request (an object with `inputs`),
/// otherwise `raw` wrapped as the model's single input, its name and datatype read from
/// `GET /v2/models/{model}[/versions/{v}]`.
///
/// # Errors
/// `raw` is not JSON, the metadata cannot be read, or the model has several inputs.
pub(crate) async fn request_body(
    client: &reqwest::Client,
    config: &LoadConfig,
    raw: &[u8],
) -> anyhow::Result<Bytes> {
    let value: Value = serde_json::from_slice(raw).context("the input is not JSON")?;
    if value.get("inputs").is_some() {
        return Ok(Bytes::copy_from_slice(raw));
    }
    let base = config.url.trim_end_matches('/');
    let url = match &config.version {
        Some(v) => format!("{base}/v2/models/{}/versions/{v}", config.model),
        None => format!("{base}/v2/models/{}", config.model),
    };
    let mut request = client.get(&url);
    if let Some(token) = &config.token {
        request = request.bearer_auth(token);
    }
    let meta: Value = request
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?
        .error_for_status()
        .with_context(|| format!("reading the model's metadata from {url}"))?
        .json()
        .await
        .context("the model's metadata is not JSON")?;
    Ok(Bytes::from(wrap(&value, &meta)?.to_string()))
}

/// Wraps a nested numeric list as the single input described by OIP model metadata. A row without
/// the batch dimension gets one (`[64]` becomes `[1, 64]` for a model whose input is `[-1, 64]`).
pub(crate) fn wrap(value: &Value, meta: &Value) -> anyhow::Result<Value> {
    let inputs = meta.get("inputs").and_then(Value::as_array).context("metadata without inputs")?;
    ensure!(
        inputs.len() == 1,
        "the model has {} inputs: give a full OIP request body (with `inputs`) instead",
        inputs.len()
    );
    let input = &inputs[0];
    let name = input.get("name").and_then(Value::as_str).context("input without a name")?;
    let datatype = input.get("datatype").and_then(Value::as_str).unwrap_or("FP32");
    let rank = input.get("shape").and_then(Value::as_array).map(Vec::len);
    let value = value.get("data").unwrap_or(value);
    let mut shape = Vec::new();
    let mut data = Vec::new();
    flatten(value, 0, &mut shape, &mut data)?;
    if rank == Some(shape.len() + 1) {
        shape.insert(0, 1);
    }
    Ok(json!({"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]}))
}

/// Flattens a rectangular nested list, recording its shape; ragged lists are refused.
fn flatten(
    value: &Value,
    depth: usize,
    shape: &mut Vec<usize>,
    out: &mut Vec<Value>,
) -> anyhow::Result<()> {
    match value {
        Value::Array(items) => {
            if shape.len() == depth {
                shape.push(items.len());
            } else if shape[depth] != items.len() {
                bail!(
                    "the input is a ragged list: rows of {} and {} items",
                    shape[depth],
                    items.len()
                );
            }
            items.iter().try_for_each(|item| flatten(item, depth + 1, shape, out))
        }
        Value::Number(_) | Value::Bool(_) | Value::String(_) => {
            ensure!(shape.len() == depth, "the input mixes lists and scalars at one depth");
            out.push(value.clone());
            Ok(())
        }
        _ => bail!("the input holds {value}, not numbers"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_becomes_a_batch_of_one() {
        let meta = json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 3]}]});
        let body = wrap(&json!([1.0, 2.0, 3.0]), &meta).unwrap();
        assert_eq!(
            body,
            json!({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 2.0, 3.0]}]})
        );
        let batch = wrap(&json!({"data": [[1, 2, 3], [4, 5, 6]]}), &meta).unwrap();
        assert_eq!(batch["inputs"][0]["shape"], json!([2, 3]));
        assert!(wrap(&json!([[1, 2], [3]]), &meta).is_err());
        let two = json!({"inputs": [{"name": "a"}, {"name": "b"}]});
        assert!(wrap(&json!([1]), &two).unwrap_err().to_string().contains("2 inputs"));
    }
}
