//! The HTTP APIs' routes, each with its description: one table per API builds both the router and
//! the OpenAPI 3 document that `OPTIONS /` and `/api-description` answer (as TorchServe's do), so
//! the document lists exactly what the listener routes.

use axum::Router;
use axum::body::Bytes;
use axum::handler::Handler;
use axum::http::header;
use axum::routing::{MethodFilter, MethodRouter, any, options};
use serde_json::{Map, Value, json};

use crate::{
    AppState, auth, comprehend, inference, kserve, management, metrics, v2, v2_extensions,
};

/// A query parameter: name, JSON schema type, description.
type Param = (&'static str, &'static str, &'static str);

/// Responses: status and description.
type Responses = &'static [(u16, &'static str)];

const OK: Responses = &[(200, "OK"), (500, "Internal Server Error")];
const MODEL: Responses = &[
    (200, "OK"),
    (400, "Bad request"),
    (401, "Missing or unknown key"),
    (404, "Model or version not found"),
    (500, "Internal Server Error"),
];
const INFER: Responses = &[
    (200, "Output data, as the model's handler writes it"),
    (400, "Bad request"),
    (401, "Missing or unknown key"),
    (404, "Model or version not found"),
    (413, "Request too large"),
    (429, "The model's queue is full"),
    (500, "Internal Server Error"),
    (503, "No worker is available to serve the request"),
    (504, "No answer within the response timeout"),
];

/// One operation: its method and what the description says of it.
struct Op {
    method: &'static str,
    id: &'static str,
    summary: &'static str,
    query: &'static [Param],
    /// The request body's media type, when it takes one.
    body: Option<&'static str>,
    responses: Responses,
}

/// A path with its handlers and their descriptions.
pub(crate) struct Route {
    path: &'static str,
    methods: MethodRouter<AppState>,
    ops: Vec<Op>,
}

impl Route {
    fn new(path: &'static str) -> Self {
        Self { path, methods: MethodRouter::new(), ops: Vec::new() }
    }

    fn op(mut self, method: &'static str, id: &'static str, summary: &'static str) -> Self {
        let op = Op { method, id, summary, query: &[], body: None, responses: OK };
        self.ops.push(op);
        self
    }

    /// Routes `method` (named `name` in the document) to `h`, and describes it. A POST takes a
    /// JSON body unless [`Self::body`] says otherwise.
    fn on<H: Handler<T, AppState>, T: 'static>(
        mut self,
        (method, name): (MethodFilter, &'static str),
        h: H,
        id: &'static str,
        summary: &'static str,
    ) -> Self {
        self.methods = self.methods.on(method, h);
        self = self.op(name, id, summary);
        if name == "post" {
            self.last().body = Some("application/json");
        }
        self
    }

    fn get<H: Handler<T, AppState>, T: 'static>(
        self,
        h: H,
        id: &'static str,
        s: &'static str,
    ) -> Self {
        self.on((MethodFilter::GET, "get"), h, id, s)
    }

    fn post<H: Handler<T, AppState>, T: 'static>(
        self,
        h: H,
        id: &'static str,
        s: &'static str,
    ) -> Self {
        self.on((MethodFilter::POST, "post"), h, id, s)
    }

    fn put<H: Handler<T, AppState>, T: 'static>(
        self,
        h: H,
        id: &'static str,
        s: &'static str,
    ) -> Self {
        self.on((MethodFilter::PUT, "put"), h, id, s)
    }

    fn delete<H: Handler<T, AppState>, T: 'static>(
        self,
        h: H,
        id: &'static str,
        s: &'static str,
    ) -> Self {
        self.on((MethodFilter::DELETE, "delete"), h, id, s)
    }

    fn last(&mut self) -> &mut Op {
        self.ops.last_mut().expect("an operation was added")
    }

    /// The last operation's query parameters.
    fn query(mut self, query: &'static [Param]) -> Self {
        self.last().query = query;
        self
    }

    /// The last operation's request body type (`*/*`: any, as the model's handler reads it).
    fn body(mut self, media: &'static str) -> Self {
        self.last().body = Some(media);
        self
    }

    /// The last operation's responses.
    fn responses(mut self, responses: Responses) -> Self {
        self.last().responses = responses;
        self
    }
}

/// The inference API: TorchServe's predictions, KServe v1, the Open Inference Protocol with
/// Triton's extensions, and the Comprehend API on `POST /`.
pub(crate) fn inference() -> Vec<Route> {
    let infer = "Runs the model on the request's tensors";
    vec![
        Route::new("/")
            .get(kserve::live, "live", "KServe v1 liveness: {\"status\": \"alive\"}")
            .post(
                comprehend::call,
                "comprehend",
                "Amazon Comprehend's PII operations (X-Amz-Target)",
            )
            .body("application/x-amz-json-1.1"),
        Route::new("/ping").get(
            inference::ping,
            "ping",
            "Healthy when every model has its minimum workers ready",
        ),
        Route::new("/predictions/{model}")
            .post(inference::predict, "predictions", "Prediction from the model's default version")
            .body("*/*")
            .responses(INFER),
        Route::new("/predictions/{model}/{version}")
            .post(inference::predict, "version_predictions", "Prediction from one version")
            .body("*/*")
            .responses(INFER),
        Route::new("/explanations/{model}")
            .post(inference::explain, "explanations", "Explanation from the model's handler")
            .body("*/*")
            .responses(INFER),
        Route::new("/explanations/{model}/{version}")
            .post(inference::explain, "version_explanations", "Explanation from one version")
            .body("*/*")
            .responses(INFER),
        Route::new("/v1/models").get(kserve::list, "kserve_list", "KServe v1: the models' names"),
        Route::new("/v1/models/{model}")
            .get(kserve::ready, "kserve_ready", "KServe v1: whether the model is ready")
            .responses(MODEL)
            .post(
                kserve::call,
                "kserve_call",
                "KServe v1 :predict and :explain (`{model}:predict`)",
            )
            .responses(INFER),
        Route::new("/v2").get(
            v2::server_metadata,
            "server_metadata",
            "Server name, version and extensions",
        ),
        Route::new("/v2/health/live").get(v2::live, "server_live", "Whether the server is live"),
        Route::new("/v2/health/ready").get(
            v2::ready,
            "server_ready",
            "Whether every model is ready",
        ),
        Route::new("/v2/models/stats").get(
            v2_extensions::all_stats,
            "all_statistics",
            "Statistics of every ready model version",
        ),
        Route::new("/v2/models/{model}")
            .get(v2::model_metadata, "model_metadata", "Versions, platform and tensor signature")
            .responses(MODEL),
        Route::new("/v2/models/{model}/ready")
            .get(v2::model_ready, "model_ready", "Whether the model can answer now")
            .responses(MODEL),
        Route::new("/v2/models/{model}/infer").post(v2::infer, "infer", infer).responses(INFER),
        Route::new("/v2/models/{model}/explain")
            .post(v2::explain, "explain", "The handler's explanation (models on Python workers)")
            .responses(INFER),
        Route::new("/v2/models/{model}/stats")
            .get(
                v2_extensions::model_stats,
                "model_statistics",
                "Statistics of the model's ready versions",
            )
            .responses(MODEL),
        Route::new("/v2/models/{model}/config")
            .get(v2_extensions::model_config, "model_config", "Triton model configuration")
            .responses(MODEL),
        Route::new("/v2/models/{model}/versions/{version}")
            .get(v2::model_metadata, "version_model_metadata", "One version's signature")
            .responses(MODEL),
        Route::new("/v2/models/{model}/versions/{version}/ready")
            .get(v2::model_ready, "version_model_ready", "Whether one version can answer now")
            .responses(MODEL),
        Route::new("/v2/models/{model}/versions/{version}/infer")
            .post(v2::infer, "version_infer", infer)
            .responses(INFER),
        Route::new("/v2/models/{model}/versions/{version}/explain")
            .post(
                v2::explain,
                "version_explain",
                "One version's explanation (models on Python workers)",
            )
            .responses(INFER),
        Route::new("/v2/models/{model}/versions/{version}/stats")
            .get(v2_extensions::version_stats, "version_statistics", "One version's statistics")
            .responses(MODEL),
        Route::new("/v2/models/{model}/versions/{version}/config")
            .get(
                v2_extensions::version_config,
                "version_model_config",
                "One version's configuration",
            )
            .responses(MODEL),
        Route::new("/v2/repository/index").post(
            v2_extensions::index,
            "repository_index",
            "The model store's models and the loaded versions' states (management key)",
        ),
        Route::new("/v2/repository/models/{model}/load")
            .post(
                v2_extensions::load,
                "repository_load",
                "Loads a model of the store (management key)",
            )
            .responses(MODEL),
        Route::new("/v2/repository/models/{model}/unload")
            .post(
                v2_extensions::unload,
                "repository_unload",
                "Unloads every version (management key)",
            )
            .responses(MODEL),
    ]
}

/// The management API. A listener shared with inference answers KServe's `/v1/models/{model}`
/// from the inference table; alone, it answers TorchServe's readiness there.
pub(crate) fn management(shared_with_inference: bool) -> Vec<Route> {
    const REGISTER: &[Param] = &[
        ("url", "string", "Archive, folder or ONNX file in the model store, or an allowed URL"),
        ("model_name", "string", "Name to register under; the archive's by default"),
        ("handler", "string", "Handler replacing the archive's"),
        ("runtime", "string", "native or python"),
        ("batch_size", "integer", "Largest batch"),
        ("max_batch_delay", "integer", "Longest wait for a batch to fill, in ms"),
        ("response_timeout", "integer", "Seconds a request may take"),
        ("startup_timeout", "integer", "Seconds a worker may take to start"),
        ("initial_workers", "integer", "Workers to start"),
        ("synchronous", "boolean", "Answer once the workers are ready"),
        ("sha256", "string", "Expected digest of a model fetched from a URL"),
    ];
    const LIST: &[Param] = &[
        ("limit", "integer", "Models per page (1 to 100)"),
        ("next_page_token", "string", "Where the page starts"),
    ];
    const SCALE: &[Param] = &[
        ("min_worker", "integer", "Workers to keep"),
        ("max_worker", "integer", "Most workers"),
        ("synchronous", "boolean", "Answer once the workers are ready"),
    ];
    const DESCRIBE: &[Param] =
        &[("customized", "boolean", "Ask a Python handler for its own metadata")];
    let version = |path| {
        Route::new(path)
            .get(management::describe, "describeModel", "Settings, workers and status")
            .query(DESCRIBE)
            .responses(MODEL)
            .put(management::scale, "setAutoScale", "Sets the worker range")
            .query(SCALE)
            .responses(MODEL)
            .delete(management::unregister, "unregisterModel", "Unregisters")
            .responses(MODEL)
    };
    let mut routes = vec![
        Route::new("/models")
            .get(management::list, "listModels", "Registered models, a page at a time")
            .query(LIST)
            .post(management::register, "registerModel", "Registers a model")
            .query(REGISTER)
            .responses(MODEL),
        version("/models/{model}"),
        version("/models/{model}/{version}"),
        Route::new("/models/{model}/{version}/set-default")
            .put(management::set_default, "setDefault", "Makes a version the default")
            .responses(MODEL),
        Route::new("/token")
            .get(auth::rotate, "token", "Replaces the inference or management key (API key)")
            .query(&[("type", "string", "inference or management")]),
    ];
    if !shared_with_inference {
        routes.push(
            Route::new("/v1/models/{model}")
                .get(kserve::management_ready, "kserve_ready", "Whether the model is ready")
                .responses(MODEL),
        );
    }
    routes
}

/// The metrics API.
pub(crate) fn metrics() -> Vec<Route> {
    vec![
        Route::new("/metrics")
            .get(metrics::metrics, "metrics", "Metrics in TorchServe's Prometheus text format")
            .query(&[("name[]", "string", "Names of metrics to keep")]),
    ]
}

/// A listener's router: `routes` plus `OPTIONS /` and `/api-description` answering their
/// description.
pub(crate) fn router(mut routes: Vec<Route>) -> Router<AppState> {
    // Described like every other route, so the document lists itself; `/` comes first.
    let root = match routes.iter().position(|r| r.path == "/") {
        Some(i) => routes.remove(i),
        None => Route::new("/"),
    };
    routes.insert(0, root.op("options", "api_description_root", "This description"));
    routes.push(Route::new("/api-description").op("get", "api_description", "This description"));
    // Written once; each call answers the same bytes.
    let document = Bytes::from(document(&routes).to_string());
    let describe = move || {
        let document = document.clone();
        async move { ([(header::CONTENT_TYPE, "application/json")], document) }
    };
    let mut router = Router::new();
    for route in routes {
        let methods = match route.path {
            "/" => route.methods.merge(options(describe.clone())),
            "/api-description" => any(describe.clone()),
            _ => route.methods,
        };
        router = router.route(route.path, methods);
    }
    router
}

/// The OpenAPI 3 document of `routes`.
fn document(routes: &[Route]) -> Value {
    let mut paths = Map::new();
    for route in routes {
        let mut item = Map::new();
        for op in &route.ops {
            item.insert(op.method.to_owned(), operation(route.path, op));
        }
        paths.insert(route.path.to_owned(), Value::Object(item));
    }
    json!({
        "openapi": "3.0.1",
        "info": {
            "title": "oxserve APIs",
            "description": "TorchServe's inference, management and metrics APIs, KServe v1 and the \
                            Open Inference Protocol with Triton's extensions",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "paths": paths,
    })
}

fn operation(path: &str, op: &Op) -> Value {
    let mut parameters: Vec<Value> = path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            json!({"in": "path", "name": name, "required": true, "schema": {"type": "string"}})
        })
        .collect();
    parameters.extend(op.query.iter().map(|(name, kind, description)| {
        json!({
            "in": "query", "name": name, "description": description, "required": *name == "url",
            "schema": {"type": kind},
        })
    }));
    let responses: Map<String, Value> = op
        .responses
        .iter()
        .map(|(code, description)| (code.to_string(), json!({"description": description})))
        .collect();
    let mut out = json!({
        "operationId": op.id,
        "description": op.summary,
        "parameters": parameters,
        "responses": responses,
    });
    if let Some(media) = op.body {
        out["requestBody"] = json!({"required": true, "content": {media: {"schema": {"type": "string", "format": "binary"}}}});
    }
    out
}
