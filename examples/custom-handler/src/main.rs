//! A server binary with a custom handler: oxserve's built-in handlers plus `digit_art`.
//!
//! Run with:
//!
//! ```text
//! cargo run --release -p oxserve-example-custom-handler -- --disable-token-auth
//! curl --data-binary @examples/custom-handler/inputs/two.txt http://127.0.0.1:8080/predictions/digit-art
//! # {"digit":2,"name":"two","confidence":1.0}
//! ```
//!
//! Flags: `--model-store DIR` (default: this crate's `model-store/`, which holds `digit-art`),
//! `--inference-address`, `--management-address`, `--metrics-address`, `--grpc-inference-address`,
//! `--grpc-management-address` (`host:port`; port 0 picks a free one), `--disable-token-auth` (otherwise keys are written to `key_file.json`, as `oxserve
//! serve` does). Every model folder in the store is loaded at startup.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use oxserve_backend_tract::TractBackend;
use oxserve_core::config::EngineConfig;
use oxserve_core::handler::{Handler, HandlerContext};
use oxserve_core::metrics::Metrics;
use oxserve_core::{RegisterRequest, Registry};
use oxserve_example_custom_handler::{DigitArtHandler, NAME};
use oxserve_server::{Server, ServerConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse(std::env::args().skip(1))?;

    let mut handlers = oxserve_handlers::builtins();
    handlers.register(
        NAME,
        Arc::new(|ctx: &HandlerContext<'_>| {
            Ok(Arc::new(DigitArtHandler::new(ctx)?) as Arc<dyn Handler>)
        }),
    );
    let engine = EngineConfig { model_store: args.model_store.clone(), ..EngineConfig::default() };
    let metrics = Arc::new(Metrics::new("localhost".into(), None));
    let registry =
        Arc::new(Registry::with_metrics(engine, vec![Arc::new(TractBackend)], handlers, metrics));
    for entry in std::fs::read_dir(&args.model_store)
        .with_context(|| format!("cannot read the model store {}", args.model_store.display()))?
    {
        let entry = entry?;
        if entry.path().join("MAR-INF/MANIFEST.json").is_file() {
            let request = RegisterRequest {
                url: entry.file_name().to_string_lossy().into_owned(),
                synchronous: true,
                loaded_at_startup: true,
                ..RegisterRequest::default()
            };
            registry
                .register(request)
                .await
                .with_context(|| format!("cannot load {}", entry.path().display()))?;
        }
    }

    let mut config = ServerConfig {
        inference_address: args.inference,
        management_address: args.management,
        metrics_address: args.metrics,
        grpc_inference_address: args.grpc_inference,
        grpc_management_address: args.grpc_management,
        ..ServerConfig::default()
    };
    if args.disable_token_auth {
        config.auth = None;
    }
    let server = Server::bind(config, Arc::clone(&registry)).await?;
    let stop = oxserve_server::shutdown_signal()?;
    // The same line `oxserve serve` prints; the tests read the addresses from it.
    println!(
        "Model server started. Inference API: http://{}, management API: http://{}, metrics API: http://{}",
        server.inference_addr(),
        server.management_addr(),
        server.metrics_addr()
    );
    server.run(stop).await?;
    tokio::task::spawn_blocking(move || registry.shutdown()).await?;
    Ok(())
}

/// Command-line flags (kept to the standard library: the example is about the handler).
#[derive(Debug)]
struct Args {
    model_store: PathBuf,
    inference: SocketAddr,
    management: SocketAddr,
    metrics: SocketAddr,
    grpc_inference: SocketAddr,
    grpc_management: SocketAddr,
    disable_token_auth: bool,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Self> {
        let mut parsed = Self {
            model_store: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("model-store"),
            inference: "127.0.0.1:8080".parse()?,
            management: "127.0.0.1:8081".parse()?,
            metrics: "127.0.0.1:8082".parse()?,
            grpc_inference: "127.0.0.1:7070".parse()?,
            grpc_management: "127.0.0.1:7071".parse()?,
            disable_token_auth: false,
        };
        while let Some(flag) = args.next() {
            let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--model-store" => parsed.model_store = PathBuf::from(value()?),
                "--inference-address" => parsed.inference = value()?.parse()?,
                "--management-address" => parsed.management = value()?.parse()?,
                "--metrics-address" => parsed.metrics = value()?.parse()?,
                "--grpc-inference-address" => parsed.grpc_inference = value()?.parse()?,
                "--grpc-management-address" => parsed.grpc_management = value()?.parse()?,
                "--disable-token-auth" => parsed.disable_token_auth = true,
                other => bail!("unknown flag {other}; see the doc comment in src/main.rs"),
            }
        }
        Ok(parsed)
    }
}
