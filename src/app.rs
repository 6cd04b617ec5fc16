//! Application state, the router, and the server's life cycle (start, serve, drain, stop).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::http::{HeaderName, Request};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::error::AppError;
use crate::http;
use crate::shutdown::Shutdown;
use crate::store::writer::{Writer, WriterHandle};
use crate::store::{Store, StoreError};

/// Something `/ready` reports on besides the database (speech providers, Twilio REST).
#[async_trait]
pub trait Dependency: Send + Sync {
    fn name(&self) -> &str;
    /// `stt`, `tts`, `telephony`, ...
    fn kind(&self) -> &'static str;
    /// `Err` carries a readable reason.
    async fn check(&self) -> Result<(), String>;
}

/// Shared by every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub writer: WriterHandle,
    pub metrics: PrometheusHandle,
    pub shutdown: Shutdown,
    pub dependencies: Arc<Vec<Arc<dyn Dependency>>>,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP surface. Tests call this with `oneshot` and no socket.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(http::health::health))
        .route("/ready", get(http::health::ready))
        .route("/metrics", get(http::health::metrics))
        .nest("/api/v1", api_router())
        .with_state(state)
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// The authenticated REST API, mounted under `/api/v1`.
fn api_router() -> Router<AppState> {
    Router::new()
        .route("/calls", get(http::calls::list))
        .route("/calls/{id}", get(http::calls::get_one))
        .fallback(|| async { AppError::NotFound("no such API endpoint".into()) })
}

/// Overrides from the command line, applied on top of the loaded config.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

impl Overrides {
    pub fn apply(&self, config: &mut Config) {
        if let Some(listen) = self.listen {
            config.server.listen = listen;
        }
        if let Some(dir) = &self.data_dir {
            config.server.data_dir = dir.clone();
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    DemoKey { path: PathBuf, source: std::io::Error },
}

/// A started server: bound, connected, migrated, ready to serve.
pub struct Server {
    pub state: AppState,
    pub local_addr: SocketAddr,
    /// The demo tenant's key, when the config asks for a demo tenant.
    pub demo_key: Option<String>,
    listener: TcpListener,
    writer: Writer,
}

impl Server {
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let metrics = crate::telemetry::metrics();
        let data_dir = config.server.data_dir.clone();
        let store = Store::connect(&config.database, &data_dir).await?;
        let writer = Writer::start(store.clone(), &config.persistence, &data_dir).await?;
        let demo_key = match &config.auth.demo_tenant {
            Some(name) => Some(demo_key(&store, name, &data_dir).await?),
            None => None,
        };
        let addr = config.server.listen;
        let listener = TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind { addr, source })?;
        let state = AppState {
            config: Arc::new(config),
            store,
            writer: writer.handle(),
            metrics,
            shutdown: Shutdown::new(),
            dependencies: Arc::new(Vec::new()),
        };
        Ok(Self { state, local_addr, demo_key, listener, writer })
    }

    /// Serves until `stop` resolves, then drains: stop accepting, give calls up to the drain
    /// timeout to finish, flush persistence, close the database.
    pub async fn run(self, stop: impl std::future::Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let Self { state, listener, writer, .. } = self;
        let token = state.shutdown.token.clone();
        let calls = state.shutdown.calls.clone();
        let drain = state.config.server.drain_timeout;
        let store = state.store.clone();
        let app = router(state);
        let serve_token = token.clone();
        let server = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move { serve_token.cancelled().await });
        let server = tokio::spawn(async move { server.await });
        stop.await;
        token.cancel();
        calls.close();
        let active = calls.len();
        if active > 0 {
            tracing::info!(active, ?drain, "waiting for calls to finish");
        }
        if tokio::time::timeout(drain, calls.wait()).await.is_err() {
            tracing::warn!(remaining = calls.len(), "drain timeout: ending remaining calls");
        }
        // Open HTTP connections get what is left of a short grace period.
        match tokio::time::timeout(Duration::from_secs(2), server).await {
            Ok(Ok(Err(err))) => tracing::error!(%err, "HTTP server error"),
            Ok(Err(err)) => tracing::error!(%err, "HTTP server task failed"),
            Ok(Ok(Ok(()))) | Err(_) => {}
        }
        writer.close(drain.max(Duration::from_secs(1))).await;
        store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Makes sure the demo tenant exists and returns a key for it. The key is minted once, on the
/// first start, and kept in `<data_dir>/demo_api_key` (mode 0600) so later starts can show it.
async fn demo_key(store: &Store, tenant: &str, data_dir: &std::path::Path) -> Result<String, StartError> {
    let path = data_dir.join("demo_api_key");
    let (tenant, _) = store.ensure_tenant(tenant).await?;
    if let Ok(saved) = std::fs::read_to_string(&path) {
        let saved = saved.trim().to_string();
        if store.authenticate(&saved).await?.is_some_and(|t| t.id == tenant.id) {
            return Ok(saved);
        }
    }
    let (_, key) = store.create_api_key(&tenant.id, Some("demo")).await?;
    write_private(&path, &key).map_err(|source| StartError::DemoKey { path, source })?;
    Ok(key)
}

fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")
}
