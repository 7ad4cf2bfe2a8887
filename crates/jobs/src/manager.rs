//! PII jobs a server runs for its clients (Comprehend's `StartPiiEntitiesDetectionJob` and
//! friends): each job's record is a small JSON file in the server's job folder, its progress lives
//! under its output prefix, so a restarted server finds every job and resumes the unfinished ones
//! where they stood. One job runs at a time (each uses every core); the others wait SUBMITTED.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use oxserve_pii::document::Output;
use oxserve_pii::{Detector, MaskMode, Redaction};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::{Counters, DocumentsPer, Finish, Job, JobError, Location, Redact, RunOptions, Shard};

/// Comprehend's `JobStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Submitted,
    InProgress,
    Completed,
    Failed,
    StopRequested,
    Stopped,
}

impl Status {
    /// Comprehend's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "SUBMITTED",
            Self::InProgress => "IN_PROGRESS",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::StopRequested => "STOP_REQUESTED",
            Self::Stopped => "STOPPED",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Stopped)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InputConfig {
    pub s3_uri: String,
    /// `ONE_DOC_PER_FILE` (default) or `ONE_DOC_PER_LINE`.
    #[serde(default = "one_doc_per_file")]
    pub input_format: String,
}

fn one_doc_per_file() -> String {
    "ONE_DOC_PER_FILE".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OutputConfig {
    pub s3_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

/// Comprehend's job `RedactionConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RedactionConfig {
    #[serde(default)]
    pub pii_entity_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_mode: Option<MaskMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_character: Option<String>,
}

/// A job as Comprehend describes it (`PiiEntitiesDetectionJobProperties`); also its record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Properties {
    pub job_id: String,
    pub job_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    pub job_status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Seconds since the Unix epoch (AWS JSON's timestamps).
    pub submit_time: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<f64>,
    pub input_data_config: InputConfig,
    /// Where the outputs are: the requested prefix and the job's own folder under it.
    pub output_data_config: OutputConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redaction_config: Option<RedactionConfig>,
    pub language_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_access_role_arn: Option<String>,
    /// `ONLY_REDACTION` or `ONLY_OFFSETS`.
    pub mode: String,
    /// The client's idempotency token: the same token starts no second job.
    #[serde(default, skip_serializing)]
    pub client_request_token: Option<String>,
}

/// What a client asks for; checked by [`Manager::start`].
#[derive(Debug, Clone)]
pub struct StartRequest {
    pub job_name: Option<String>,
    pub input: InputConfig,
    pub output: OutputConfig,
    pub mode: String,
    pub redaction: Option<RedactionConfig>,
    pub language_code: String,
    pub data_access_role_arn: Option<String>,
    pub client_request_token: Option<String>,
}

/// A job's live counts.
#[derive(Debug, Clone)]
pub struct Progress {
    pub properties: Properties,
    pub counters: Arc<Counters>,
    /// Documents per second while it runs.
    pub rate: f64,
}

#[derive(Debug)]
struct Entry {
    properties: Properties,
    counters: Arc<Counters>,
    stop: CancellationToken,
    started: Option<Instant>,
}

/// The server's PII jobs.
#[derive(Debug)]
pub struct Manager {
    folder: PathBuf,
    jobs: Mutex<BTreeMap<String, Entry>>,
    detector: OnceLock<Arc<Detector>>,
    running: Semaphore,
    owner: String,
}

/// Why a request about a job is refused (the server maps these to Comprehend's errors).
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("{0}")]
    Invalid(String),
    #[error("no job with id {0}")]
    NotFound(String),
    #[error("the job records could not be written: {0}")]
    Io(#[from] std::io::Error),
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

impl Manager {
    /// Opens the job folder (`owner` names this server in batch leases), and resumes the jobs that
    /// had not finished. Must run inside a Tokio runtime.
    pub fn open(folder: PathBuf, owner: String) -> Result<Arc<Self>, ManagerError> {
        let mut jobs = BTreeMap::new();
        if folder.is_dir() {
            for entry in std::fs::read_dir(&folder)? {
                let path = entry?.path();
                if path.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                let bytes = std::fs::read(&path)?;
                match serde_json::from_slice::<Properties>(&bytes) {
                    Ok(properties) => {
                        let entry = Entry {
                            properties,
                            counters: Arc::default(),
                            stop: CancellationToken::new(),
                            started: None,
                        };
                        jobs.insert(entry.properties.job_id.clone(), entry);
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), %e, "skipping an unreadable job record")
                    }
                }
            }
        }
        let manager = Arc::new(Self {
            folder,
            jobs: Mutex::new(jobs),
            detector: OnceLock::new(),
            running: Semaphore::new(1),
            owner,
        });
        let unfinished: Vec<(String, Status)> = manager
            .lock()
            .values()
            .filter(|e| !e.properties.job_status.is_finished())
            .map(|e| (e.properties.job_id.clone(), e.properties.job_status))
            .collect();
        for (id, status) in unfinished {
            if status == Status::StopRequested {
                manager.finish(
                    &id,
                    Status::Stopped,
                    Some("stopped when the server stopped".into()),
                )?;
            } else {
                tracing::info!(job = %id, "resuming a PII job after a restart");
                tokio::spawn(Arc::clone(&manager).run(id));
            }
        }
        Ok(manager)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a job and starts it (after the one running, if any).
    pub fn start(self: &Arc<Self>, request: StartRequest) -> Result<Properties, ManagerError> {
        if let Some(token) = &request.client_request_token
            && let Some(found) = self
                .lock()
                .values()
                .find(|e| e.properties.client_request_token.as_ref() == Some(token))
        {
            return Ok(found.properties.clone());
        }
        // Checked now, so a bad request is refused at once rather than failing later.
        transform_of(&request.mode, request.redaction.as_ref(), &request.input.input_format)?;
        if request.language_code != "en" {
            return Err(ManagerError::Invalid(format!(
                "PII jobs support LanguageCode en; got {:?}",
                request.language_code
            )));
        }
        for (what, uri) in [
            ("InputDataConfig", &request.input.s3_uri),
            ("OutputDataConfig", &request.output.s3_uri),
        ] {
            if !uri.starts_with("s3://") || uri.len() <= "s3://".len() {
                return Err(ManagerError::Invalid(format!(
                    "{what}.S3Uri must be an s3:// URI; got {uri:?}"
                )));
            }
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let output =
            format!("{}/oxserve-PII-{id}/output/", request.output.s3_uri.trim_end_matches('/'));
        let properties = Properties {
            job_arn: format!(
                "arn:aws:comprehend:us-east-1:000000000000:pii-entities-detection-job/{id}"
            ),
            job_id: id.clone(),
            job_name: request.job_name,
            job_status: Status::Submitted,
            message: None,
            submit_time: now(),
            end_time: None,
            input_data_config: request.input,
            output_data_config: OutputConfig {
                s3_uri: output,
                kms_key_id: request.output.kms_key_id,
            },
            redaction_config: request.redaction,
            language_code: request.language_code,
            data_access_role_arn: request.data_access_role_arn,
            mode: request.mode,
            client_request_token: request.client_request_token,
        };
        self.save(&properties)?;
        let entry = Entry {
            properties: properties.clone(),
            counters: Arc::default(),
            stop: CancellationToken::new(),
            started: None,
        };
        self.lock().insert(id.clone(), entry);
        tokio::spawn(Arc::clone(self).run(id));
        Ok(properties)
    }

    pub fn describe(&self, id: &str) -> Result<Properties, ManagerError> {
        self.lock()
            .get(id)
            .map(|e| e.properties.clone())
            .ok_or_else(|| ManagerError::NotFound(id.to_owned()))
    }

    /// Every job, oldest first, with its live counts.
    pub fn list(&self) -> Vec<Progress> {
        let mut all: Vec<Progress> = self
            .lock()
            .values()
            .map(|e| {
                let done = e.counters.succeeded.load(Ordering::Relaxed)
                    + e.counters.failed.load(Ordering::Relaxed);
                let rate =
                    e.started.map_or(0.0, |s| done as f64 / s.elapsed().as_secs_f64().max(1e-3));
                Progress {
                    properties: e.properties.clone(),
                    counters: Arc::clone(&e.counters),
                    rate,
                }
            })
            .collect();
        all.sort_by(|a, b| a.properties.submit_time.total_cmp(&b.properties.submit_time));
        all
    }

    /// Asks a job to stop: it finishes the documents in flight and becomes STOPPED.
    pub fn stop(&self, id: &str) -> Result<Status, ManagerError> {
        let mut jobs = self.lock();
        let entry = jobs.get_mut(id).ok_or_else(|| ManagerError::NotFound(id.to_owned()))?;
        match entry.properties.job_status {
            Status::Submitted | Status::InProgress => {
                entry.properties.job_status = Status::StopRequested;
                entry.stop.cancel();
                let properties = entry.properties.clone();
                drop(jobs);
                self.save(&properties)?;
                Ok(Status::StopRequested)
            }
            Status::StopRequested => Ok(Status::StopRequested),
            done => {
                Err(ManagerError::Invalid(format!("job {id} is {done:?} and cannot be stopped")))
            }
        }
    }

    fn save(&self, properties: &Properties) -> Result<(), ManagerError> {
        std::fs::create_dir_all(&self.folder)?;
        let path = self.folder.join(format!("{}.json", properties.job_id));
        let staged = path.with_extension("json.tmp");
        std::fs::write(
            &staged,
            serde_json::to_vec_pretty(properties).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&staged, &path)?;
        Ok(())
    }

    /// Sets a job's status (and end time when it finished), and saves its record.
    fn finish(
        &self,
        id: &str,
        status: Status,
        message: Option<String>,
    ) -> Result<(), ManagerError> {
        let properties = {
            let mut jobs = self.lock();
            let Some(entry) = jobs.get_mut(id) else { return Ok(()) };
            entry.properties.job_status = status;
            entry.properties.message = message;
            if status.is_finished() {
                entry.properties.end_time = Some(now());
            }
            entry.properties.clone()
        };
        self.save(&properties)
    }

    async fn run(self: Arc<Self>, id: String) {
        let Ok(_permit) = self.running.acquire().await else { return };
        let (properties, counters, stop) = {
            let mut jobs = self.lock();
            let Some(entry) = jobs.get_mut(&id) else { return };
            if entry.stop.is_cancelled() {
                drop(jobs);
                let _ = self.finish(&id, Status::Stopped, None);
                return;
            }
            entry.started = Some(Instant::now());
            (entry.properties.clone(), Arc::clone(&entry.counters), entry.stop.clone())
        };
        if let Err(e) = self.finish(&id, Status::InProgress, None) {
            tracing::warn!(job = %id, %e, "could not save the job record");
        }
        let outcome = self.execute(&properties, &counters, &stop).await;
        let (status, message) = match outcome {
            Ok(Finish::Completed(report)) if report.failed.is_empty() => (Status::Completed, None),
            Ok(Finish::Completed(report)) => (
                Status::Completed,
                Some(format!(
                    "{} of {} documents could not be processed; see .oxserve-job/report.json under the output prefix",
                    report.failed.len(),
                    report.documents
                )),
            ),
            Ok(Finish::Stopped) => (Status::Stopped, None),
            Err(e) => (Status::Failed, Some(e.to_string())),
        };
        tracing::info!(job = %id, ?status, "PII job ended");
        if let Err(e) = self.finish(&id, status, message) {
            tracing::warn!(job = %id, %e, "could not save the job record");
        }
    }

    async fn execute(
        &self,
        p: &Properties,
        counters: &Counters,
        stop: &CancellationToken,
    ) -> Result<Finish, JobError> {
        let transform =
            transform_of(&p.mode, p.redaction_config.as_ref(), &p.input_data_config.input_format)
                .map_err(|e| JobError::Invalid(e.to_string()))?;
        let detector = Arc::clone(self.detector.get_or_init(|| Arc::new(Detector::new())));
        let redact =
            Redact { detector, redaction: transform.0, output: transform.1, per: transform.2 };
        let input = Location::parse(&p.input_data_config.s3_uri, false)?;
        let output = Location::parse(&p.output_data_config.s3_uri, true)?;
        let job = Job::open(input, output, Arc::new(redact), 1000).await?;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let options = RunOptions {
            concurrency: 2 * cores,
            shard: Shard::default(),
            owner: format!("{}/{}", self.owner, p.job_id),
            lease: Duration::from_secs(60),
        };
        job.run(&options, counters, stop).await
    }
}

/// The redaction, output and document split a job's settings ask for.
fn transform_of(
    mode: &str,
    config: Option<&RedactionConfig>,
    input_format: &str,
) -> Result<(Redaction, Output, DocumentsPer), ManagerError> {
    let output = match mode {
        "ONLY_REDACTION" => Output::Redaction,
        "ONLY_OFFSETS" => Output::Offsets,
        other => {
            return Err(ManagerError::Invalid(format!(
                "Mode must be ONLY_REDACTION or ONLY_OFFSETS; got {other:?}"
            )));
        }
    };
    let per = match input_format {
        "ONE_DOC_PER_FILE" => DocumentsPer::File,
        "ONE_DOC_PER_LINE" => DocumentsPer::Line,
        other => {
            return Err(ManagerError::Invalid(format!(
                "InputFormat must be ONE_DOC_PER_FILE or ONE_DOC_PER_LINE; got {other:?}"
            )));
        }
    };
    let redaction = match config {
        None if output == Output::Redaction => {
            return Err(ManagerError::Invalid(
                "RedactionConfig is required when Mode is ONLY_REDACTION".into(),
            ));
        }
        None => Redaction::default(),
        Some(config) => {
            let types = if config.pii_entity_types.is_empty() {
                "ALL".to_owned()
            } else {
                config.pii_entity_types.join(",")
            };
            let mask = config.mask_character.as_deref().unwrap_or("*");
            let mode = config.mask_mode.unwrap_or_default();
            Redaction::new(&types, mode, mask, Redaction::default().min_score)
                .map_err(|e| ManagerError::Invalid(e.to_string()))?
        }
    };
    Ok((redaction, output, per))
}
