//! Application state, the router, and the server's life cycle (start, serve, drain, stop).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::http::{HeaderName, Request};
use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::call::{BargeIn, CallRegistry, CallServices, DialogSetup};
use crate::config::Config;
use crate::dialog::flow::FlowSet;
use crate::ids::TenantId;
use crate::monitor::EventBus;
use crate::speech::providers::SpeechProviders;
use crate::speech::SpeechError;
use crate::transport::twilio;
use crate::transport::twilio::rest::{TwilioRest, TwilioRestConfig};
use crate::transport::twilio::webhook::PendingCalls;
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
    pub calls: CallRegistry,
    pub flows: Arc<FlowSet>,
    pub speech: SpeechProviders,
    pub twilio_pending: Arc<PendingCalls>,
    /// The tenant phone calls belong to.
    pub twilio_tenant: TenantId,
    pub twilio_rest: Option<TwilioRest>,
    /// Live events for `/ws/events`, supervisors and external bots.
    pub events: EventBus,
    /// Browser calls: signalling sessions, call tokens, the WebRTC stack.
    pub webrtc: crate::transport::webrtc::WebRtc,
    /// The voice catalog and synthesis API.
    pub tts_api: http::tts::TtsApi,
    /// The call distributor: department queues and agent offers.
    pub acd: crate::center::AcdHandle,
    /// LLM mode's chat client, when `[llm]` is configured.
    pub llm: Option<crate::dialog::llm::LlmClient>,
    /// Which app WebSocket connection drives which call.
    pub app_bots: crate::dialog::app_ws::Attachments,
}

impl AppState {
    /// What every call actor needs from the server.
    pub fn call_services(&self) -> CallServices {
        CallServices {
            stt: self.speech.stt.clone(),
            tts: self.speech.tts.clone(),
            writer: self.writer.clone(),
            twilio: self.twilio_rest.clone(),
            config: self.config.calls.clone(),
            events: self.events.clone(),
            acd: Some(self.acd.clone()),
            llm: self.llm.clone().map(|c| (c, self.config.llm.system_prompt.clone())),
        }
    }

    /// A fresh dialog for a call on flow `name` (or the default flow).
    pub fn dialog_for(&self, name: Option<&str>) -> Result<DialogSetup, String> {
        let flow = match name {
            Some(n) => self.flows.get(n).ok_or_else(|| format!("unknown flow {n:?}"))?,
            None => self.flows.select(None, None).ok_or("no default flow configured")?,
        };
        Ok(DialogSetup {
            dialog: Box::new(flow.start()),
            flow: Some(flow.name().to_string()),
            barge_in: BargeIn { enabled: flow.barge_in(), min_speech: flow.barge_in_min_speech() },
            voice: flow.voice().map(str::to_string),
            phrases: flow.stt_phrases().to_vec(),
        })
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP surface. Tests call this with `oneshot` and no socket.
pub fn router(state: AppState) -> Router {
    // The softphone page (and any other static pages) at `/`.
    let web_dir = state.webrtc.config().web_dir.clone();
    let trust_forwarded = state.config.server.trust_forwarded_headers;
    Router::new()
        .route("/health", get(http::health::health))
        .route("/ready", get(http::health::ready))
        .route("/metrics", get(http::health::metrics))
        .route("/twilio/voice", post(twilio::webhook::voice))
        .route("/twilio/status", post(twilio::webhook::status))
        .route("/twilio/stream/{token}", get(twilio::stream::stream))
        .merge(crate::transport::webrtc::whip::routes())
        .route("/ws/tts", get(http::tts::ws::tts_socket))
        .route("/ws/events", get(http::events_ws::events_ws))
        .route("/ws/app", get(crate::dialog::app_ws::app_ws))
        .nest("/api/v1", api_router())
        // The agent console and the supervisor dashboard, at names people type.
        .route_service("/agent", tower_http::services::ServeFile::new(web_dir.join("agent.html")))
        .route_service("/supervisor", tower_http::services::ServeFile::new(web_dir.join("supervisor.html")))
        .fallback_service(tower_http::services::ServeDir::new(web_dir))
        .with_state(state)
        .layer(axum::middleware::from_fn(move |req, next| crate::client::layer(trust_forwarded, req, next)))
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
        .route("/calls", get(http::calls::list).post(http::call_control::outbound))
        .route("/calls/{id}", get(http::calls::get_one))
        .route("/calls/{id}/say", post(http::call_control::say))
        .route("/calls/{id}/play", post(http::call_control::play))
        .route("/calls/{id}/mute", post(http::call_control::mute))
        .route("/calls/{id}/unmute", post(http::call_control::unmute))
        .route("/calls/{id}/hold", post(http::call_control::hold))
        .route("/calls/{id}/unhold", post(http::call_control::unhold))
        .route("/calls/{id}/hangup", post(http::call_control::hangup))
        .route("/calls/{id}/transfer", post(http::call_control::transfer))
        .route("/calls/{id}/transfers", get(http::transfers::for_call))
        .route("/calls/{id}/disposition", post(http::disposition::save))
        .route("/departments", get(http::departments::list).post(http::departments::create))
        .route(
            "/departments/{id}",
            get(http::departments::get_one).put(http::departments::update).delete(http::departments::delete),
        )
        .route("/departments/{id}/queue", get(http::queues::department_queue))
        .route("/queues", get(http::queues::all))
        .route("/agents", get(http::agents::list).post(http::agents::create))
        .route("/agents/{id}", get(http::agents::get_one).put(http::agents::update).delete(http::agents::delete))
        .route("/agents/{id}/status", axum::routing::put(http::agents::set_status))
        .route("/agents/{id}/accept", post(http::agents::accept))
        .route("/agents/{id}/decline", post(http::agents::decline))
        .route("/agents/{id}/keys", get(http::agent_keys::list).post(http::agent_keys::create))
        .route("/agents/{id}/keys/{key_id}", axum::routing::delete(http::agent_keys::revoke))
        .route("/me", get(http::agent_keys::me))
        .route("/transfers", post(http::transfers::create))
        .route("/transfers/{id}", get(http::transfers::get_one))
        .route("/transfers/{id}/complete", post(http::transfers::complete))
        .route("/transfers/{id}/cancel", post(http::transfers::cancel))
        .route("/analytics/departments/{id}", get(http::analytics::department))
        .route("/alerts", get(http::alerts::list))
        .route("/alerts/{id}/resolve", post(http::alerts::resolve))
        .route("/openapi.json", get(http::openapi::serve))
        .route("/tts/providers", get(http::tts::providers))
        .route("/tts/voices", get(http::tts::voices))
        .route("/tts/voices/{id}/preview", get(http::tts::preview))
        .route("/tts/tiers", get(http::tts::tiers))
        .route("/tts/synthesize", post(http::tts::synthesize))
        .fallback(|| async { AppError::NotFound("no such API endpoint".into()) })
}

/// Starts the call distributor. Queue entries and agent assignments left open by a previous
/// run belong to calls that died with it: they are closed first.
async fn start_acd(
    config: &Config,
    store: &Store,
    calls: &CallRegistry,
    events: &EventBus,
) -> Result<crate::center::AcdHandle, StartError> {
    let lost = store.close_stale_entries().await?;
    let reset = store.reset_agent_assignments().await?;
    if lost + reset > 0 {
        tracing::info!(lost, reset, "closed queue entries and agent assignments of the previous run");
    }
    let acd_config = crate::center::AcdConfig {
        offer_timeout: config.center.offer_timeout,
        announce_interval: config.center.announce_interval,
        channel_capacity: config.center.channel_capacity,
    };
    let control = Arc::new(crate::center::RegistryControl(calls.clone()));
    let (handle, _task) = crate::center::Acd::start(acd_config, Arc::new(store.clone()), control, events.clone());
    Ok(handle)
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
    #[error("speech providers: {0}")]
    Speech(#[from] SpeechError),
    #[error("flows: {0}")]
    Flows(String),
    #[error("LLM client: {0}")]
    Llm(String),
    #[error("Twilio REST client: {0}")]
    Twilio(String),
    #[error("webrtc: {0}")]
    WebRtc(String),
}

/// A started server: bound, connected, migrated, ready to serve.
pub struct Server {
    pub state: AppState,
    pub local_addr: SocketAddr,
    /// The demo tenant's key, when the config asks for a demo tenant.
    pub demo_key: Option<String>,
    /// The demo agent's own key (an agent key), when the demo is seeded and the agent exists.
    pub demo_agent_key: Option<String>,
    listener: TcpListener,
    writer: Writer,
}

impl Server {
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let metrics = crate::telemetry::metrics();
        let data_dir = config.server.data_dir.clone();
        let store = Store::connect(&config.database, &data_dir).await?;
        let writer = Writer::start(store.clone(), &config.persistence, &data_dir).await?;
        let (demo_key, demo_agent_key) = match &config.auth.demo_tenant {
            Some(name) => {
                let key = demo_key(&store, name, &data_dir).await?;
                let agent_key = if config.auth.demo_seed {
                    seed_demo(&store, name).await?;
                    demo_agent_key(&store, name, &data_dir).await?
                } else {
                    None
                };
                (Some(key), agent_key)
            }
            None => (None, None),
        };
        let speech = SpeechProviders::from_config(&config.speech)?;
        let flows = load_flows(&config.flows.dir)?;
        let (twilio_tenant, _) = store.ensure_tenant(&config.twilio.tenant).await?;
        let twilio_rest = match (&config.twilio.account_sid, &config.twilio.auth_token) {
            (Some(sid), Some(token)) => {
                let mut rest = TwilioRestConfig::new(sid.clone(), token.clone());
                rest.base_url = config.twilio.api_base.clone();
                Some(TwilioRest::new(rest).map_err(|e| StartError::Twilio(e.to_string()))?)
            }
            _ => None,
        };
        let tts_api = http::tts::TtsApi::new(&config.speech, &config.tts_api);
        let webrtc = crate::transport::webrtc::WebRtc::new(config.webrtc.clone()).map_err(StartError::WebRtc)?;
        let addr = config.server.listen;
        let listener = TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind { addr, source })?;
        let config_max_calls = config.calls.max_concurrent;
        let calls = CallRegistry::new(config_max_calls);
        let events = EventBus::new(10_000, 1024);
        let acd = start_acd(&config, &store, &calls, &events).await?;
        let llm = if config.llm.is_configured() {
            Some(crate::dialog::llm::LlmClient::new(&config.llm).map_err(|e| StartError::Llm(e.to_string()))?)
        } else {
            None
        };
        let state = AppState {
            config: Arc::new(config),
            store,
            writer: writer.handle(),
            metrics,
            shutdown: Shutdown::new(),
            dependencies: Arc::new(speech.dependencies()),
            calls,
            flows: Arc::new(flows),
            speech,
            twilio_pending: Arc::new(PendingCalls::default()),
            twilio_tenant: twilio_tenant.id,
            twilio_rest,
            events,
            webrtc,
            tts_api,
            acd,
            llm,
            app_bots: crate::dialog::app_ws::Attachments::new(crate::dialog::app_ws::DEFAULT_GRACE),
        };
        // Alert rules: a subscriber to the bus per tenant, stopped with the server.
        let alerts = crate::monitor::alerts::AlertService {
            store: state.store.clone(),
            events: state.events.clone(),
            config: state.config.alerts.clone(),
        };
        crate::monitor::alerts::spawn_evaluator(alerts, state.shutdown.token.clone()).await;
        Ok(Self { state, local_addr, demo_key, demo_agent_key, listener, writer })
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
        if store.authenticate(&saved).await?.is_some_and(|o| o.tenant.id == tenant.id && o.agent.is_none()) {
            return Ok(saved);
        }
    }
    let (_, key) = store.create_api_key(&tenant.id, Some("demo")).await?;
    write_private(&path, &key).map_err(|source| StartError::DemoKey { path, source })?;
    Ok(key)
}

/// The demo agent's own key, minted once and kept in `<data_dir>/demo_agent_key` (mode 0600)
/// like the demo key; none once the agent has been deleted.
async fn demo_agent_key(store: &Store, tenant: &str, data_dir: &std::path::Path) -> Result<Option<String>, StartError> {
    let path = data_dir.join("demo_agent_key");
    let (tenant, _) = store.ensure_tenant(tenant).await?;
    let agent = crate::center::AgentId(DEMO_AGENT.into());
    if let Ok(saved) = std::fs::read_to_string(&path) {
        let saved = saved.trim().to_string();
        if store.authenticate(&saved).await?.is_some_and(|o| o.tenant.id == tenant.id && o.agent.as_ref() == Some(&agent)) {
            return Ok(Some(saved));
        }
    }
    match store.get_agent(&tenant.id, &agent).await {
        Ok(_) => {}
        Err(crate::store::StoreError::NotFound(_)) => return Ok(None),
        Err(err) => return Err(err.into()),
    }
    let (_, key) = store.create_agent_key(&tenant.id, &agent, Some("demo")).await?;
    write_private(&path, &key).map_err(|source| StartError::DemoKey { path, source })?;
    Ok(Some(key))
}

/// The agent `make run` creates for trying the agent console.
pub const DEMO_AGENT: &str = "demo-agent";

/// The demo flow's departments and one browser agent in them, once: a tenant that already has
/// departments is left as it is.
async fn seed_demo(store: &Store, tenant: &str) -> Result<(), StartError> {
    let (tenant, _) = store.ensure_tenant(tenant).await?;
    if !store.list_departments(&tenant.id).await?.is_empty() {
        return Ok(());
    }
    let mut departments = Vec::new();
    for name in ["billing", "sales", "support"] {
        let input = crate::store::DepartmentInput {
            name: name.to_string(),
            overflow_number: None,
            overflow: None,
            business_hours: None,
            service_level_secs: 20,
            max_queue: 50,
            max_wait_secs: 600,
        };
        departments.push(store.create_department(&tenant.id, &input).await?.id);
    }
    let agent = crate::store::AgentInput {
        name: "Demo Agent".into(),
        email: None,
        departments,
        skills: Vec::new(),
        languages: Vec::new(),
        reach: crate::center::Reach::Browser,
    };
    store.create_agent(&tenant.id, Some(crate::center::AgentId(DEMO_AGENT.into())), &agent).await?;
    tracing::info!(tenant = %tenant.id, "demo departments and agent created");
    Ok(())
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

/// The demo front-desk flow, built in so the server runs from any directory.
const BUILTIN_FLOW: (&str, &str) = ("front_desk", include_str!("../config/flows/front_desk.toml"));

fn load_flows(dir: &std::path::Path) -> Result<FlowSet, StartError> {
    if dir.is_dir() {
        FlowSet::load_dir(dir).map_err(|e| StartError::Flows(e.to_string()))
    } else {
        tracing::warn!(dir = %dir.display(), "flow directory not found; using the built-in demo flow");
        FlowSet::from_str(BUILTIN_FLOW.0, BUILTIN_FLOW.1).map_err(|e| StartError::Flows(e.to_string()))
    }
}
