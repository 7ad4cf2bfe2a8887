//! oxserve's network front end: TorchServe's inference API (`/ping`, `/predictions`), the Open
//! Inference Protocol REST API (`/v2/…`), TorchServe's management API (`/models…`) and `/metrics`,
//! each on its own HTTP listener as in TorchServe (8080, 8081, 8082); and over gRPC the Open Inference
//! Protocol with TorchServe's inference service (7070) and TorchServe's management service (7071).
//!
//! ```no_run
//! # async fn demo(registry: std::sync::Arc<oxserve_core::Registry>) -> std::io::Result<()> {
//! let server = oxserve_server::Server::bind(oxserve_server::ServerConfig::default(), registry).await?;
//! // Signal handlers go in before the server is announced (see `shutdown_signal`).
//! let stop = oxserve_server::shutdown_signal()?;
//! println!("inference API on {}", server.inference_addr());
//! server.run(stop).await
//! # }
//! ```

mod auth;
mod body;
mod comprehend;
mod comprehend_jobs;
mod describe;
mod error;
pub mod grpc;
mod hosted;
mod inference;
mod kserve;
mod listen;
mod management;
mod metrics;
mod observe;
#[cfg(test)]
mod router_tests;
mod routes;
mod services;
mod sigv4;
mod tensor_bytes;
mod v2;
mod v2_extensions;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderName, Uri};
use axum::response::IntoResponse;
use oxserve_core::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::normalize_path::NormalizePath;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::info;

pub use crate::auth::AuthConfig;
use crate::error::ApiError;
pub use crate::listen::{TlsConfig, TlsListeners};

/// Listener addresses and HTTP limits.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Inference API (TorchServe `inference_address`).
    pub inference_address: SocketAddr,
    /// Management API (`management_address`).
    pub management_address: SocketAddr,
    /// Metrics API (`metrics_address`).
    pub metrics_address: SocketAddr,
    /// gRPC inference: the Open Inference Protocol and TorchServe's inference service
    /// (`grpc_inference_port`).
    pub grpc_inference_address: SocketAddr,
    /// gRPC management: TorchServe's management service (`grpc_management_port`).
    pub grpc_management_address: SocketAddr,
    /// Largest request body (or gRPC message) accepted, in bytes (`max_request_size`).
    pub max_request_size: usize,
    /// Largest response body (or gRPC message) sent, in bytes (`max_response_size`).
    pub max_response_size: usize,
    /// Whether register and unregister calls are allowed (`enable_model_api`).
    pub enable_model_api: bool,
    /// Token authorization; `None` turns it off (`disable_token_authorization`).
    pub auth: Option<AuthConfig>,
    /// After a shutdown signal, how long requests already accepted may take to finish before their
    /// connections are cut.
    pub drain_timeout: std::time::Duration,
    /// How long a client may take to send a request's headers before its connection is closed
    /// (slow-loris defence; HTTP/1). hyper also runs this clock while a keep-alive connection waits
    /// for its next request, so it is the idle keep-alive timeout too.
    pub header_read_timeout: std::time::Duration,
    /// How long a client may take to send a request body before it is answered 408.
    pub body_read_timeout: std::time::Duration,
    /// HTTPS (`certificate_file`, `private_key_file`) and the listeners it is on; `None`: plain
    /// HTTP everywhere.
    pub tls: Option<TlsConfig>,
    /// The name OIP server metadata gives (`server_name`): clients written for another server
    /// sometimes check it.
    pub server_name: String,
    /// Where Comprehend PII jobs keep their records (`job_store`): a folder, created when the
    /// first job starts. `None`: the job operations are refused.
    pub job_store: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
        Self {
            inference_address: local(8080),
            management_address: local(8081),
            metrics_address: local(8082),
            grpc_inference_address: local(7070),
            grpc_management_address: local(7071),
            max_request_size: 6_553_500,
            max_response_size: 6_553_500,
            enable_model_api: false,
            auth: Some(AuthConfig {
                key_file: PathBuf::from("key_file.json"),
                expiration: None,
                external: false,
            }),
            drain_timeout: std::time::Duration::from_secs(30),
            header_read_timeout: std::time::Duration::from_secs(10),
            body_read_timeout: std::time::Duration::from_secs(60),
            tls: None,
            server_name: "oxserve".into(),
            job_store: None,
        }
    }
}

impl ServerConfig {
    /// The defaults with every listener on 127.0.0.1 port 0, so the OS picks free ports: for tests,
    /// benchmarks and programs that embed the server and read the addresses back from [`Server`].
    pub fn on_free_ports() -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            inference_address: any,
            management_address: any,
            metrics_address: any,
            grpc_inference_address: any,
            grpc_management_address: any,
            ..Self::default()
        }
    }
}

/// What every request handler can reach.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) registry: Arc<Registry>,
    pub(crate) config: Arc<ServerConfig>,
    /// The live keys when token authorization is on.
    pub(crate) keys: Option<Arc<auth::Keys>>,
    /// Set when shutdown starts: readiness answers 503 and new requests are refused while accepted
    /// ones finish.
    pub(crate) draining: Arc<std::sync::atomic::AtomicBool>,
    /// The PII detector of the Comprehend API, built on its first request.
    pub(crate) pii: Arc<std::sync::OnceLock<oxserve_pii::Detector>>,
    /// Comprehend PII jobs, when the server has a job store.
    pub(crate) jobs: Option<Arc<oxserve_jobs::manager::Manager>>,
}

/// `{model}` and, on the versioned twin of a route, `{version}`: one handler serves both.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ModelPath {
    pub(crate) model: String,
    pub(crate) version: Option<String>,
}

/// The API a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Inference,
    Management,
    Metrics,
    GrpcInference,
    GrpcManagement,
}

impl Api {
    /// gRPC and HTTP never share a listener: each speaks its own protocol and error format.
    fn is_grpc(self) -> bool {
        matches!(self, Self::GrpcInference | Self::GrpcManagement)
    }

    /// Whether this API's listener speaks TLS.
    fn is_tls(self, tls: Option<&TlsConfig>) -> bool {
        let Some(on) = tls.map(|t| t.listeners) else { return false };
        match self {
            Self::Inference => on.inference,
            Self::Management => on.management,
            Self::Metrics => on.metrics,
            Self::GrpcInference | Self::GrpcManagement => on.grpc,
        }
    }
}

/// A bound listener: the APIs it serves and whether it speaks TLS.
#[derive(Debug)]
struct Listener {
    apis: Vec<Api>,
    tls: bool,
    socket: TcpListener,
}

/// Bound listeners, ready to serve.
#[derive(Debug)]
pub struct Server {
    state: AppState,
    listeners: Vec<Listener>,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
}

impl Server {
    /// Binds every listener. HTTP APIs whose addresses are equal share one listener, and so do the
    /// two gRPC APIs; an HTTP API and a gRPC API never do.
    ///
    /// # Errors
    /// When an address cannot be bound, the certificate or key cannot be used, or two APIs share
    /// an address but only one of them speaks TLS.
    pub async fn bind(config: ServerConfig, registry: Arc<Registry>) -> std::io::Result<Self> {
        let wanted = [
            (Api::Inference, config.inference_address),
            (Api::Management, config.management_address),
            (Api::Metrics, config.metrics_address),
            (Api::GrpcInference, config.grpc_inference_address),
            (Api::GrpcManagement, config.grpc_management_address),
        ];
        let mut groups: Vec<(SocketAddr, Vec<Api>)> = Vec::new();
        for (api, addr) in wanted {
            let shared = groups.iter_mut().find(|(a, apis)| {
                *a == addr && addr.port() != 0 && apis.iter().all(|x| x.is_grpc() == api.is_grpc())
            });
            match shared {
                Some((_, apis)) => apis.push(api),
                None => groups.push((addr, vec![api])),
            }
        }
        let is_tls = |api: &Api| api.is_tls(config.tls.as_ref());
        if let Some((addr, apis)) =
            groups.iter().find(|(_, apis)| apis.iter().any(|a| is_tls(a) != is_tls(&apis[0])))
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{apis:?} share {addr}, but not all of their addresses say https://"),
            ));
        }
        // Certificate problems stop the start, before anything listens.
        let tls = config.tls.as_ref().map(TlsConfig::server_config).transpose()?;
        let mut listeners = Vec::new();
        for (addr, apis) in groups {
            let tls = is_tls(&apis[0]);
            if !addr.ip().is_loopback() {
                tracing::warn!(%addr, apis = ?apis, "listening beyond this machine (not a loopback address)");
            }
            let socket = TcpListener::bind(addr).await.map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot listen on {addr} for {apis:?}: {e}"))
            })?;
            listeners.push(Listener { apis, tls, socket });
        }
        let keys = match &config.auth {
            Some(auth) => {
                let keys = auth::Keys::create(auth.clone()).map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        if auth.external {
                            format!("cannot read the external key file: {e}")
                        } else {
                            format!("cannot write the key file {}: {e}", auth.key_file.display())
                        },
                    )
                })?;
                info!(key_file = %auth.key_file.display(), "token authorization is on; keys are in the key file");
                Some(Arc::new(keys))
            }
            None => {
                tracing::warn!(
                    "token authorization is off: anyone who reaches the APIs can use them"
                );
                None
            }
        };
        let draining = Arc::default();
        let jobs = match &config.job_store {
            Some(folder) => {
                let owner = format!("oxserve-{}", oxserve_core::system::hostname());
                let manager =
                    oxserve_jobs::manager::Manager::open(folder.clone(), owner).map_err(|e| {
                        std::io::Error::other(format!(
                            "cannot open the job store {}: {e}",
                            folder.display()
                        ))
                    })?;
                Some(manager)
            }
            None => None,
        };
        Ok(Self {
            state: AppState {
                registry,
                config: Arc::new(config),
                keys,
                draining,
                pii: Arc::default(),
                jobs,
            },
            listeners,
            tls,
        })
    }

    fn addr_of(&self, api: Api) -> SocketAddr {
        self.listeners
            .iter()
            .find(|l| l.apis.contains(&api))
            .and_then(|l| l.socket.local_addr().ok())
            .expect("every API has a bound listener")
    }

    /// Where the inference API listens.
    pub fn inference_addr(&self) -> SocketAddr {
        self.addr_of(Api::Inference)
    }

    /// Where the management API listens.
    pub fn management_addr(&self) -> SocketAddr {
        self.addr_of(Api::Management)
    }

    /// Where the metrics API listens.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.addr_of(Api::Metrics)
    }

    /// Where the gRPC inference services (Open Inference Protocol, TorchServe inference) listen.
    pub fn grpc_inference_addr(&self) -> SocketAddr {
        self.addr_of(Api::GrpcInference)
    }

    /// Where the gRPC management service listens.
    pub fn grpc_management_addr(&self) -> SocketAddr {
        self.addr_of(Api::GrpcManagement)
    }

    /// The base URL of each API, in the order inference, management, metrics, gRPC inference,
    /// gRPC management; `https://` where the listener speaks TLS.
    pub fn urls(&self) -> [String; 5] {
        [Api::Inference, Api::Management, Api::Metrics, Api::GrpcInference, Api::GrpcManagement]
            .map(|api| {
                let scheme =
                    if api.is_tls(self.state.config.tls.as_ref()) { "https" } else { "http" };
                format!("{scheme}://{}", self.addr_of(api))
            })
    }

    /// Serves until `shutdown` completes, then stops accepting and lets requests in flight finish.
    ///
    /// # Errors
    /// When a listener fails.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let token = CancellationToken::new();
        let mut tasks = tokio::task::JoinSet::new();
        for Listener { apis, tls, socket } in self.listeners {
            let router = router(&apis, self.state.clone());
            let token = token.clone();
            info!(addr = %socket.local_addr()?, apis = ?apis, tls, "listening");
            let limits =
                listen::ConnLimits { header_read_timeout: self.state.config.header_read_timeout };
            let tls = self.tls.clone().filter(|_| tls);
            tasks.spawn(listen::serve(socket, router, tls, limits, token));
        }
        tokio::spawn({
            let (token, draining) = (token.clone(), Arc::clone(&self.state.draining));
            async move {
                shutdown.await;
                draining.store(true, std::sync::atomic::Ordering::Release);
                info!("shutdown requested: readiness is now 503, finishing accepted requests");
                token.cancel();
            }
        });
        let mut outcome = Ok(());
        let serve_all = async {
            while let Some(result) = tasks.join_next().await {
                if let Err(e) = result.map_err(std::io::Error::other).and_then(|r| r) {
                    outcome = Err(e);
                }
                // One listener ending (an error) ends them all.
                token.cancel();
            }
        };
        let drain = self.state.config.drain_timeout;
        let deadline = async {
            token.cancelled().await;
            tokio::time::sleep(drain).await;
        };
        tokio::select! {
            () = serve_all => {}
            () = deadline => {
                tracing::warn!(?drain, "drain time is over: closing the connections still open");
            }
        }
        if let Some(keys) = &self.state.keys {
            keys.remove_file();
        }
        outcome
    }
}

/// Installs the SIGINT (Ctrl-C) and SIGTERM handlers now and returns the future that completes on
/// either, for [`Server::run`].
///
/// Call it before announcing the server. Handlers installed lazily, when the server first polls its
/// shutdown future, leave a window after the announcement in which a supervisor's SIGTERM kills the
/// process with the default action instead of draining it (two starts in three on a loaded
/// 2-core machine, when the signal was sent the moment the line appeared).
///
/// # Errors
/// A handler cannot be installed.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        // Windows registers its Ctrl-C handler on first poll; there is no SIGTERM to race with.
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

fn router(apis: &[Api], state: AppState) -> Router {
    if apis.iter().any(|api| api.is_grpc()) {
        let services: Vec<grpc::Services> = apis
            .iter()
            .filter_map(|api| match api {
                Api::GrpcInference => Some(grpc::Services::Inference),
                Api::GrpcManagement => Some(grpc::Services::Management),
                _ => None,
            })
            .collect();
        let request_id = HeaderName::from_static(observe::REQUEST_ID);
        return grpc::router(&services, &state)
            .layer(axum::middleware::from_fn_with_state(state.clone(), observe::record_grpc))
            .layer(
                ServiceBuilder::new()
                    .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                    .layer(PropagateRequestIdLayer::new(request_id))
                    .layer(TraceLayer::new_for_grpc().make_span_with(observe::span)),
            );
    }
    let mut tables = Vec::new();
    for api in apis {
        tables.extend(match api {
            Api::Inference => routes::inference(),
            Api::Management => routes::management(apis.contains(&Api::Inference)),
            Api::Metrics => routes::metrics(),
            Api::GrpcInference | Api::GrpcManagement => Vec::new(),
        });
    }
    let router = routes::router(tables);
    let mut router = router
        .fallback(|uri: Uri| async move {
            // Triton's and KServe's clients decode errors as `{"error": ...}`, also for unknown
            // paths.
            let path = uri.path();
            let error = ApiError::not_found();
            let oip =
                ["/v1", "/v2"].iter().any(|p| path == *p || path.starts_with(&format!("{p}/")));
            if oip { error.v2() } else { error }
        })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed().into_response() });
    // Scrapes of a metrics-only listener are not API traffic: they stay out of Requests2XX and the
    // access log, as in TorchServe.
    if apis.iter().any(|api| *api != Api::Metrics) {
        router = router
            .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require))
            .layer(axum::middleware::from_fn_with_state(state.clone(), observe::record));
    }
    let request_id = HeaderName::from_static(observe::REQUEST_ID);
    let routed = router
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(TraceLayer::new_for_http().make_span_with(observe::span)),
        )
        .with_state(state);
    // TorchServe ignores a trailing slash (`DELETE /models/m/?synchronous=true`); axum's routing
    // does not, so the path is trimmed before routing.
    Router::new().fallback_service(NormalizePath::trim_trailing_slash(routed))
}

/// Entry points for the fuzz targets in `fuzz/` and their corpus replay test; not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use axum::http::{HeaderMap, HeaderValue, header};
    use futures_util::FutureExt;
    use oxserve_backend::DType;

    /// The binary tensor extension's element decoding, for every datatype: `data` is one byte of
    /// element count (0–255) followed by the raw bytes.
    pub fn binary_tensor(data: &[u8]) {
        let Some((&count, raw)) = data.split_first() else { return };
        for dtype in DType::ALL {
            if let Ok(t) =
                crate::services::oip::raw_tensor("fuzz", dtype, vec![usize::from(count)], raw)
            {
                assert_eq!(t.data().len(), usize::from(count));
                // Bytes, not values: NaN payloads must survive but never compare equal.
                let encoded = crate::tensor_bytes::encode(t.data());
                let decoded = crate::tensor_bytes::decode(dtype, usize::from(count), &encoded)
                    .expect("what was encoded decodes");
                assert_eq!(
                    crate::tensor_bytes::encode(&decoded),
                    encoded,
                    "{dtype} does not round-trip"
                );
            }
        }
    }

    /// An OIP body split by `Inference-Header-Content-Length` (the first two bytes, big-endian),
    /// then its JSON part parsed as an inference request.
    pub fn binary_request(data: &[u8]) {
        let [hi, lo, body @ ..] = data else { return };
        let mut headers = HeaderMap::new();
        let length = u16::from_be_bytes([*hi, *lo]).to_string();
        headers.insert(crate::v2::HEADER_LENGTH, HeaderValue::from_str(&length).expect("digits"));
        let bytes = bytes::Bytes::copy_from_slice(body);
        if let Ok((json, binary)) = crate::v2::split_binary(&headers, &bytes) {
            assert_eq!(json.len() + binary.len(), bytes.len());
            let _ = serde_json::from_slice::<crate::v2::InferRequest>(&json);
        }
    }

    /// A multipart body with boundary `x` split into handler parts.
    pub fn multipart(data: &[u8]) {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("multipart/form-data; boundary=x"),
        );
        let body = bytes::Bytes::copy_from_slice(data);
        let parsed = crate::body::payload(&headers, body).now_or_never();
        assert!(parsed.is_some(), "multipart parsing of an in-memory body must not wait");
    }
}
