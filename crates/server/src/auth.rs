//! Token authorization, on by default, compatible with TorchServe's `key_file.json` workflow but
//! without its weak spots: keys are 32 random bytes, compared in constant time, the key file is
//! written with mode 0600, a missing or wrong key is 401 and a valid key of the wrong kind is 403.
//!
//! Three keys, as in TorchServe: `inference` (inference API), `management` (management API) and `API`,
//! which never expires and is used only to rotate the other two with `GET /token?type=…` on the
//! management API. Health checks (`/ping`, `/v2/health/*`, KServe's `/`) stay open so load balancers and Kubernetes
//! probes work without a secret. Keys never appear in logs.
//!
//! Replicas behind one Service need the same keys, so the keys can also come from the operator
//! ([`AuthConfig::external`], a mounted Kubernetes Secret in TorchServe's key file format): then
//! oxserve reads them and never writes, rotates or deletes the file. Requests look at the file's
//! modification time at most once a second and re-read it when it changed, so an updated Secret
//! (a revoked key included) takes effect within a second of the kubelet writing it, without a
//! restart.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::ApiError;

/// Token settings.
#[derive(Clone)]
pub struct AuthConfig {
    /// Where the keys are written (TorchServe writes `key_file.json` in the working directory).
    pub key_file: PathBuf,
    /// Inference and management keys expire after this long; `None` keeps them until rotated.
    pub expiration: Option<Duration>,
    /// The key file is the operator's (`external_key_file`): its keys are read, not made, and the
    /// file is never written or deleted. Expiry then comes from the file's `expiration time`s.
    pub external: bool,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("key_file", &self.key_file)
            .field("expiration", &self.expiration)
            .field("external", &self.external)
            .finish()
    }
}

/// Which API a key opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Inference,
    Management,
    /// Rotates the other two.
    Api,
}

impl KeyKind {
    fn name(self) -> &'static str {
        match self {
            Self::Inference => "inference",
            Self::Management => "management",
            Self::Api => "API",
        }
    }
}

struct Key {
    secret: String,
    expires: Option<SystemTime>,
}

impl Key {
    fn new(expiration: Option<Duration>) -> std::io::Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| std::io::Error::other(format!("no randomness: {e}")))?;
        let secret = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self { secret, expires: expiration.map(|d| SystemTime::now() + d) })
    }

    /// A key of an operator's key file: `{"key": "...", "expiration time": "RFC 3339"}`.
    fn parse(kind: KeyKind, value: Option<&serde_json::Value>) -> Result<Self, String> {
        let name = kind.name();
        let secret = value
            .and_then(|v| v.get("key"))
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| format!("no `{name}` key (`{{\"{name}\": {{\"key\": \"...\"}}}}`)"))?;
        if secret.len() < 16 || !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "the `{name}` key must be at least 16 printable characters without spaces \
                 (e.g. `openssl rand -hex 32`)"
            ));
        }
        let expires = match value.and_then(|v| v.get("expiration time")) {
            None | Some(serde_json::Value::Null) => None,
            Some(t) => {
                let text = t.as_str().unwrap_or_default();
                let at = chrono::DateTime::parse_from_rfc3339(text).map_err(|e| {
                    format!("the `{name}` key's expiration time `{text}` is not RFC 3339: {e}")
                })?;
                Some(SystemTime::from(at))
            }
        };
        Ok(Self { secret: secret.to_owned(), expires })
    }

    fn matches(&self, candidate: &[u8]) -> bool {
        bool::from(self.secret.as_bytes().ct_eq(candidate))
    }

    fn json(&self) -> serde_json::Value {
        match self.expires {
            Some(t) => json!({
                "key": self.secret,
                "expiration time": chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            }),
            None => json!({"key": self.secret}),
        }
    }
}

/// The live keys of a server.
pub(crate) struct Keys {
    config: AuthConfig,
    keys: RwLock<[Key; 3]>,
    /// When an external key file was last looked at, and its modification time then.
    watch: Mutex<Watch>,
}

struct Watch {
    checked: Instant,
    modified: Option<SystemTime>,
}

/// How often requests look at an external key file.
const RECHECK: Duration = Duration::from_secs(1);

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("key_file", &self.config.key_file).finish_non_exhaustive()
    }
}

const KINDS: [KeyKind; 3] = [KeyKind::Inference, KeyKind::Management, KeyKind::Api];

impl Keys {
    /// Makes fresh keys and writes the key file, or reads an external one.
    pub(crate) fn create(config: AuthConfig) -> std::io::Result<Self> {
        if config.external {
            let (keys, modified) = read_file(&config.key_file)?;
            let watch = Mutex::new(Watch { checked: Instant::now(), modified });
            return Ok(Self { config, keys: RwLock::new(keys), watch });
        }
        let keys = [Key::new(config.expiration)?, Key::new(config.expiration)?, Key::new(None)?];
        let watch = Mutex::new(Watch { checked: Instant::now(), modified: None });
        let this = Self { config, keys: RwLock::new(keys), watch };
        this.write_file()?;
        Ok(this)
    }

    /// Re-reads an external key file that changed, looking at most once per [`RECHECK`]; a
    /// request that finds another one looking goes on with the keys there are.
    fn refresh(&self) {
        if !self.config.external {
            return;
        }
        let Ok(mut watch) = self.watch.try_lock() else { return };
        if watch.checked.elapsed() < RECHECK {
            return;
        }
        watch.checked = Instant::now();
        let modified = std::fs::metadata(&self.config.key_file).and_then(|m| m.modified()).ok();
        if modified.is_none() || modified == watch.modified {
            return;
        }
        // Looked at once per change, whether it reads or not: a broken file warns once.
        watch.modified = modified;
        match read_file(&self.config.key_file) {
            Ok((keys, _)) => {
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
                tracing::info!(key_file = %self.config.key_file.display(), "external keys re-read");
            }
            Err(e) => {
                // The old keys stay: a broken Secret must not lock every client out.
                tracing::warn!(key_file = %self.config.key_file.display(), error = %e, "external key file changed but cannot be read; keeping the keys read before");
            }
        }
    }

    fn file_json(keys: &[Key; 3]) -> serde_json::Value {
        json!({
            "inference": keys[0].json(),
            "management": keys[1].json(),
            "API": keys[2].json(),
        })
    }

    /// Writes the key file readable by its owner only, replacing any earlier one atomically.
    fn write_file(&self) -> std::io::Result<()> {
        let text = {
            let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
            serde_json::to_string_pretty(&Self::file_json(&keys)).unwrap_or_default()
        };
        write_private(&self.config.key_file, text.as_bytes())
    }

    /// Deletes the key file (at shutdown, as TorchServe does); an external one stays.
    pub(crate) fn remove_file(&self) {
        if !self.config.external {
            let _ = std::fs::remove_file(&self.config.key_file);
        }
    }

    /// The kind of the key `token` is, if any, and whether it has expired.
    fn classify(&self, token: &[u8]) -> Option<(KeyKind, bool)> {
        self.refresh();
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        // Every key is compared, so timing does not tell which one matched.
        let matches: Vec<bool> = keys.iter().map(|k| k.matches(token)).collect();
        let i = matches.iter().position(|m| *m)?;
        let expired = keys[i].expires.is_some_and(|t| SystemTime::now() > t);
        Some((KINDS[i], expired))
    }

    /// The `kind` key's secret while it has not expired: what an AWS SDK signs with (SigV4).
    pub(crate) fn secret(&self, kind: KeyKind) -> Option<String> {
        self.refresh();
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let key = &keys[KINDS.iter().position(|k| *k == kind)?];
        key.expires.is_none_or(|t| SystemTime::now() <= t).then(|| key.secret.clone())
    }

    fn rotate(&self, kind: KeyKind) -> std::io::Result<serde_json::Value> {
        if self.config.external {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!(
                    "the keys come from {}: change that file (the Secret) instead; oxserve re-reads it",
                    self.config.key_file.display()
                ),
            ));
        }
        let index = KINDS.iter().position(|k| *k == kind).unwrap_or(0);
        let fresh = Key::new(self.config.expiration)?;
        let answer = json!({ kind.name(): fresh.json() });
        self.keys.write().unwrap_or_else(PoisonError::into_inner)[index] = fresh;
        self.write_file()?;
        Ok(answer)
    }
}

/// Reads an operator's key file: the three keys, distinct, and the file's modification time.
fn read_file(path: &Path) -> std::io::Result<([Key; 3], Option<SystemTime>)> {
    let invalid = |m: String| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {m}", path.display()))
    };
    let modified = std::fs::metadata(path)?.modified().ok();
    let text = std::fs::read_to_string(path)?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| invalid(format!("not a JSON key file: {e}")))?;
    let [a, b, c] = KINDS.map(|kind| Key::parse(kind, json.get(kind.name())));
    let keys = [a.map_err(&invalid)?, b.map_err(&invalid)?, c.map_err(&invalid)?];
    if keys[0].secret == keys[1].secret
        || keys[0].secret == keys[2].secret
        || keys[1].secret == keys[2].secret
    {
        return Err(invalid("the inference, management and API keys must differ".to_owned()));
    }
    Ok((keys, modified))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("key_file.json")
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn unauthorized(message: &str) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "InvalidKeyException", message).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    response
}

/// Paths that answer without a key: health checks for probes, and metrics (as in TorchServe; the
/// metrics listener is on loopback by default).
fn is_open(method: &axum::http::Method, path: &str) -> bool {
    crate::observe::is_health_check(method, path)
        || path == "/metrics"
        // The API description, as TorchServe serves it: without a key.
        || path == "/api-description"
        || (method == axum::http::Method::OPTIONS && path == "/")
}

/// The token of an `Authorization: Bearer <key>` value (HTTP header or gRPC metadata).
pub(crate) fn bearer(value: Option<&str>) -> Option<&str> {
    value
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
}

/// Whether `token` opens an API that needs the `needed` key: the one rule the HTTP middleware and
/// the gRPC services share. A missing, unknown or expired key is 401; a valid key of another kind
/// is 403.
pub(crate) fn check(keys: &Keys, needed: KeyKind, token: Option<&str>) -> Result<(), ApiError> {
    let unauthorized =
        |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "InvalidKeyException", message);
    let Some(token) = token else {
        return Err(unauthorized(
            "this API needs a key: send `Authorization: Bearer <key>` with the key from the key file",
        ));
    };
    match keys.classify(token.as_bytes()) {
        None => Err(unauthorized("the key is not valid")),
        Some((_, true)) if keys.config.external => {
            Err(unauthorized("the key has expired; the key file it comes from needs a new one"))
        }
        Some((_, true)) => Err(unauthorized(
            "the key has expired; rotate it with GET /token?type=… and the API key",
        )),
        Some((kind, false)) if kind == needed => Ok(()),
        Some((kind, false)) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "InvalidKeyException",
            format!(
                "a {} key cannot be used here; this API needs the {} key",
                kind.name(),
                needed.name()
            ),
        )),
    }
}

/// Checks the bearer token of a request against the key its API needs.
pub(crate) async fn require(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(keys) = state.keys.as_deref() else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if is_open(request.method(), path) || crate::comprehend::is_signed(&request) {
        // A request signed with AWS Signature Version 4 is checked by the Comprehend API, which
        // needs the body to check it.
        return next.run(request).await;
    }
    let needed = if path == "/token" {
        KeyKind::Api
    } else if path == "/models"
        || path.starts_with("/models/")
        || path.starts_with("/v2/repository/")
        || path == "/workflows"
        || path.starts_with("/workflows/")
    {
        KeyKind::Management
    } else {
        KeyKind::Inference
    };
    let token = bearer(request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()));
    match check(keys, needed, token) {
        Ok(()) => next.run(request).await,
        Err(e) if e.status == StatusCode::UNAUTHORIZED => unauthorized(&e.message),
        Err(e) => e.into_response(),
    }
}

/// Query of `GET /token`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct TokenParams {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// `GET /token?type=inference|management`: replaces that key (authorized with the API key by
/// [`require`]) and answers with the new one.
pub(crate) async fn rotate(
    State(state): State<AppState>,
    axum::extract::Query(params): axum::extract::Query<TokenParams>,
) -> Result<Response, ApiError> {
    let Some(keys) = state.keys.as_deref() else {
        return Err(ApiError::bad_request("token authorization is disabled on this server"));
    };
    let kind = match params.kind.as_deref() {
        Some("inference") => KeyKind::Inference,
        Some("management") => KeyKind::Management,
        other => {
            return Err(ApiError::bad_request(format!(
                "type must be inference or management, got {}",
                other.unwrap_or("nothing")
            )));
        }
    };
    let answer = keys.rotate(kind).map_err(|e| match e.kind() {
        std::io::ErrorKind::Unsupported => ApiError::bad_request(e.to_string()),
        _ => ApiError::internal(e),
    })?;
    tracing::info!(kind = kind.name(), "key rotated");
    Ok(axum::Json(answer).into_response())
}
