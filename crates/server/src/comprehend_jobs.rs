//! Comprehend's PII job operations (`StartPiiEntitiesDetectionJob`, `Describe…`, `List…`,
//! `Stop…`) over AWS JSON 1.1, on the same `POST /` as the synchronous ones, run by
//! [`oxserve_jobs::manager::Manager`]: jobs read and write S3 with the server's own AWS
//! environment, and survive a restart (records in `job_store`, progress under the output prefix).

use axum::http::StatusCode;
use oxserve_jobs::manager::{
    InputConfig, Manager, ManagerError, OutputConfig, RedactionConfig, StartRequest, Status,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;

pub(crate) const OPERATIONS: [&str; 4] = [
    "StartPiiEntitiesDetectionJob",
    "DescribePiiEntitiesDetectionJob",
    "ListPiiEntitiesDetectionJobs",
    "StopPiiEntitiesDetectionJob",
];

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "InvalidRequestException", message).aws()
}

impl From<ManagerError> for ApiError {
    fn from(e: ManagerError) -> Self {
        match e {
            ManagerError::Invalid(m) => invalid(m),
            ManagerError::NotFound(_) => {
                Self::new(StatusCode::BAD_REQUEST, "JobNotFoundException", e.to_string()).aws()
            }
            ManagerError::Io(e) => Self::internal(e).aws(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Start {
    input_data_config: Option<InputConfig>,
    output_data_config: Option<OutputConfig>,
    mode: Option<String>,
    redaction_config: Option<RedactionConfig>,
    data_access_role_arn: Option<String>,
    job_name: Option<String>,
    language_code: Option<String>,
    client_request_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ById {
    job_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Filter {
    job_name: Option<String>,
    job_status: Option<Status>,
    submit_time_before: Option<f64>,
    submit_time_after: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct List {
    #[serde(default)]
    filter: Filter,
    next_token: Option<String>,
    max_results: Option<usize>,
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| invalid(format!("the request body does not fit the operation: {e}")))
}

fn required<T>(value: Option<T>, name: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| invalid(format!("{name} is required")))
}

/// Runs one job operation; the answer's JSON.
pub(crate) fn call(
    manager: Option<&std::sync::Arc<Manager>>,
    operation: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    let manager = manager.ok_or_else(|| {
        invalid(
            "this server runs no batch jobs: start it with a job store (--job-store or job_store)",
        )
    })?;
    match operation {
        "StartPiiEntitiesDetectionJob" => {
            let start: Start = parse(body)?;
            let request = StartRequest {
                input: required(start.input_data_config, "InputDataConfig")?,
                output: required(start.output_data_config, "OutputDataConfig")?,
                mode: required(start.mode, "Mode")?,
                redaction: start.redaction_config,
                language_code: required(start.language_code, "LanguageCode")?,
                data_access_role_arn: start.data_access_role_arn,
                job_name: start.job_name,
                client_request_token: start.client_request_token,
            };
            let job = manager.start(request)?;
            Ok(json!({ "JobId": job.job_id, "JobArn": job.job_arn, "JobStatus": job.job_status }))
        }
        "DescribePiiEntitiesDetectionJob" => {
            let id: ById = parse(body)?;
            let job = manager.describe(&required(id.job_id, "JobId")?)?;
            Ok(json!({ "PiiEntitiesDetectionJobProperties": job }))
        }
        "StopPiiEntitiesDetectionJob" => {
            let id: ById = parse(body)?;
            let id = required(id.job_id, "JobId")?;
            let status = manager.stop(&id)?;
            Ok(json!({ "JobId": id, "JobStatus": status }))
        }
        "ListPiiEntitiesDetectionJobs" => {
            let list: List = parse(body)?;
            let max = list.max_results.unwrap_or(100);
            if !(1..=500).contains(&max) {
                return Err(invalid("MaxResults must be between 1 and 500"));
            }
            let skip: usize = match list.next_token.as_deref() {
                Some(token) => {
                    token.parse().map_err(|_| invalid("NextToken is not one this server gave"))?
                }
                None => 0,
            };
            let f = &list.filter;
            let matching: Vec<_> = manager
                .list()
                .into_iter()
                .map(|p| p.properties)
                .filter(|p| f.job_name.as_ref().is_none_or(|n| p.job_name.as_ref() == Some(n)))
                .filter(|p| f.job_status.is_none_or(|s| p.job_status == s))
                .filter(|p| f.submit_time_before.is_none_or(|t| p.submit_time < t))
                .filter(|p| f.submit_time_after.is_none_or(|t| p.submit_time > t))
                .collect();
            let page: Vec<_> = matching.iter().skip(skip).take(max).collect();
            let mut answer = json!({ "PiiEntitiesDetectionJobPropertiesList": page });
            if skip + max < matching.len() {
                answer["NextToken"] = json!((skip + max).to_string());
            }
            Ok(answer)
        }
        other => Err(invalid(format!("{other} is not a job operation"))),
    }
}

/// The jobs' counts in the Prometheus text format, for `/metrics`; `wanted` keeps only those
/// families (all when empty), as the core's families are kept.
pub(crate) fn metrics(manager: &Manager, wanted: &[String]) -> String {
    use prometheus::{GaugeVec, IntGaugeVec, Opts, Registry};
    use std::sync::atomic::Ordering::Relaxed;
    let registry = Registry::new();
    let mut order = oxserve_core::metrics::LabelOrder::default();
    let labels = ["job_id", "job_name", "status"];
    let documents = IntGaugeVec::new(
        Opts::new(
            "oxserve_job_documents",
            "Documents of a batch job by outcome (planned, done earlier, succeeded, failed).",
        ),
        &[&labels[..], &["outcome"]].concat(),
    );
    let bytes = IntGaugeVec::new(
        Opts::new("oxserve_job_bytes", "Bytes a batch job read and wrote."),
        &[&labels[..], &["direction"]].concat(),
    );
    let rate = GaugeVec::new(
        Opts::new("oxserve_job_documents_per_second", "Documents per second while the job runs."),
        &labels,
    );
    let (Ok(documents), Ok(bytes), Ok(rate)) = (documents, bytes, rate) else {
        return String::new();
    };
    for collector in [
        Box::new(documents.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(bytes.clone()),
        Box::new(rate.clone()),
    ] {
        order.add(collector.as_ref());
        let _ = registry.register(collector);
    }
    for job in manager.list() {
        let p = &job.properties;
        let base = [p.job_id.as_str(), p.job_name.as_deref().unwrap_or(""), p.job_status.as_str()];
        let c = &job.counters;
        for (outcome, value) in [
            ("planned", c.planned.load(Relaxed)),
            ("skipped", c.skipped.load(Relaxed)),
            ("succeeded", c.succeeded.load(Relaxed)),
            ("failed", c.failed.load(Relaxed)),
        ] {
            documents.with_label_values(&[base[0], base[1], base[2], outcome]).set(value as i64);
        }
        bytes
            .with_label_values(&[base[0], base[1], base[2], "in"])
            .set(c.bytes_in.load(Relaxed) as i64);
        bytes
            .with_label_values(&[base[0], base[1], base[2], "out"])
            .set(c.bytes_out.load(Relaxed) as i64);
        rate.with_label_values(&base).set(job.rate);
    }
    oxserve_core::metrics::render_families(&registry.gather(), &order, wanted)
}
