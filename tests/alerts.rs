//! Live alerts: one active alert per subject and kind enforced by the database (SQLite and
//! PostgreSQL), the API with tenant isolation, and a dead-air alert on a real call.

mod db;
mod support;

use std::time::Duration;

use db::{Backend, TestDb};
use serde_json::{json, Value};
use support::twilio_caller::{CallerConfig, TwilioCaller};
use switchboard::app::Server;
use switchboard::ids::{CallId, TenantId};
use switchboard::monitor::alerts::{AlertKind, Severity, Subject};
use switchboard::speech::providers::{SttChoice, TtsChoice};
use switchboard::store::{AlertStatus, NewAlert, Store};
use tokio_util::sync::CancellationToken;

fn dead_air(call: &str) -> NewAlert {
    NewAlert {
        kind: AlertKind::DeadAir,
        severity: Severity::Warning,
        subject: Subject::Call(call.into()),
        call_id: Some(CallId(call.into())),
        department: None,
        message: "silence".into(),
        data: json!({}),
    }
}

async fn uniqueness_is_enforced_by_the_database(backend: Backend) {
    let db = TestDb::new(backend).await;
    let cfg = db.config();
    let store = Store::connect(&cfg.database, &cfg.server.data_dir).await.expect("connect and migrate");
    let tenant = store.create_tenant("t").await.unwrap().id;
    let first = store.raise_alert(&tenant, &dead_air("call_1")).await.unwrap().expect("first is stored");
    assert!(store.raise_alert(&tenant, &dead_air("call_1")).await.unwrap().is_none(), "deduplicated");
    assert!(store.raise_alert(&tenant, &dead_air("call_2")).await.unwrap().is_some(), "another subject is fine");

    // Bypassing the repository: the partial unique index itself refuses a second active row.
    sqlx::any::install_default_drivers();
    let url = match &cfg.database.url {
        Some(url) => url.clone(),
        None => format!("sqlite://{}", cfg.server.data_dir.join("switchboard.db").display()),
    };
    let raw = sqlx::AnyPool::connect(&url).await.unwrap();
    let insert = |id: &'static str| {
        sqlx::query(
            "INSERT INTO alerts (id, tenant_id, kind, severity, subject_kind, subject_id, message, raised_at)
             VALUES ($1, $2, 'dead_air', 'warning', 'call', 'call_1', 'raw', 0)",
        )
        .bind(id)
        .bind(tenant.0.clone())
    };
    let err = insert("alr_raw1").execute(&raw).await.expect_err("a second active alert is refused");
    assert!(err.as_database_error().is_some_and(|e| e.is_unique_violation()), "{err}");

    // Once resolved, the subject may raise the same kind again; the history is kept.
    let resolved = store.resolve_alert(&tenant, &first.id, "sam", "supervisor").await.unwrap();
    assert_eq!(resolved.resolved_by.as_deref(), Some("sam"));
    assert!(resolved.resolved_at.is_some());
    insert("alr_raw2").execute(&raw).await.expect("allowed after resolution");
    assert!(store.raise_alert(&tenant, &dead_air("call_1")).await.unwrap().is_none(), "the raw row is active now");
    let all = store.list_alerts(&tenant, AlertStatus::All, 100).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(store.list_alerts(&tenant, AlertStatus::Resolved, 100).await.unwrap().len(), 1);
    raw.close().await;
    store.close().await;
}

#[tokio::test]
async fn one_active_alert_per_subject_and_kind_on_sqlite() {
    uniqueness_is_enforced_by_the_database(Backend::Sqlite).await;
}

#[tokio::test]
async fn one_active_alert_per_subject_and_kind_on_postgres() {
    uniqueness_is_enforced_by_the_database(Backend::Postgres).await;
}

struct Running {
    base: String,
    ws: String,
    key: String,
    store: Store,
    demo: TenantId,
    events: switchboard::monitor::EventBus,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _db: TestDb,
}

impl Running {
    async fn start(tweak: impl FnOnce(&mut switchboard::config::Config)) -> Self {
        let db = TestDb::new(Backend::Sqlite).await;
        let mut cfg = db.config();
        cfg.flows.dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/flows");
        cfg.speech.stt = SttChoice::Null;
        cfg.speech.tts = TtsChoice::Tone;
        tweak(&mut cfg);
        let server = Server::start(cfg).await.expect("server starts");
        let addr = server.local_addr;
        let key = server.demo_key.clone().expect("demo tenant");
        let store = server.state.store.clone();
        let demo = server.state.twilio_tenant.clone();
        let events = server.state.events.clone();
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(server.run(async move { s.cancelled().await }));
        Self { base: format!("http://{addr}"), ws: format!("ws://{addr}/twilio/stream/test"), key, store, demo, events, stop, task, _db: db }
    }

    async fn get(&self, key: &str, path: &str) -> (u16, Value) {
        let r = reqwest::Client::new().get(format!("{}{path}", self.base)).bearer_auth(key).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, key: &str, path: &str, body: Value) -> (u16, Value) {
        let r = reqwest::Client::new().post(format!("{}{path}", self.base)).bearer_auth(key).json(&body).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn shutdown(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn api_lists_by_severity_then_age_and_resolves_within_the_tenant() {
    let srv = Running::start(|_| {}).await;
    let other = srv.store.create_tenant("other").await.unwrap();
    let (_, other_key) = srv.store.create_api_key(&other.id, Some("t")).await.unwrap();

    let older = srv.store.raise_alert(&srv.demo, &dead_air("call_a")).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let critical = NewAlert { severity: Severity::Critical, ..dead_air("call_b") };
    let critical = srv.store.raise_alert(&srv.demo, &critical).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let newer = srv.store.raise_alert(&srv.demo, &dead_air("call_c")).await.unwrap().unwrap();
    srv.store.raise_alert(&other.id, &dead_air("call_x")).await.unwrap().unwrap();

    let (status, list) = srv.get(&srv.key, "/api/v1/alerts").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list["alerts"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![critical.id.as_str(), older.id.as_str(), newer.id.as_str()], "severity, then age");
    assert_eq!(list["alerts"][0]["subject"], json!({ "type": "call", "id": "call_b" }));
    assert_eq!(list["alerts"][0]["kind"], "dead_air");

    let (_, theirs) = srv.get(&other_key, "/api/v1/alerts").await;
    assert_eq!(theirs["alerts"].as_array().unwrap().len(), 1, "only their own");
    let path = format!("/api/v1/alerts/{}/resolve", older.id);
    assert_eq!(srv.post(&other_key, &path, json!({})).await.0, 404, "another tenant's alert is not found");

    let (status, resolved) = srv.post(&srv.key, &path, json!({ "by": "supervisor sam" })).await;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(resolved["resolved_by"], "supervisor sam");
    assert_eq!(resolved["resolution"], "supervisor");
    assert_eq!(srv.post(&srv.key, &path, json!({})).await.0, 409, "already resolved");

    let (_, active) = srv.get(&srv.key, "/api/v1/alerts?status=active").await;
    assert_eq!(active["alerts"].as_array().unwrap().len(), 2);
    let (_, done) = srv.get(&srv.key, "/api/v1/alerts?status=resolved").await;
    assert_eq!(done["alerts"][0]["id"], older.id.as_str());
    assert_eq!(srv.get(&srv.key, "/api/v1/alerts?status=all").await.1["alerts"].as_array().unwrap().len(), 3);
    assert_eq!(srv.get(&srv.key, "/api/v1/alerts?status=bogus").await.0, 422);
    assert_eq!(srv.get("wrong", "/api/v1/alerts").await.0, 401);
    srv.shutdown().await;
}

#[tokio::test]
async fn dead_air_on_a_real_call_is_raised_and_resolves_when_the_caller_speaks() {
    let srv = Running::start(|cfg| {
        cfg.alerts.dead_air = Duration::from_millis(800);
        cfg.alerts.dead_air_critical = Duration::from_secs(30);
        cfg.alerts.tick = Duration::from_millis(50);
    })
    .await;
    // The evaluator subscribes to the tenant's bus right after the server starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let caller = TwilioCaller::connect(CallerConfig::new(srv.ws.clone()).parameter("flow", "front_desk")).await.unwrap();
    // The greeting (a tone) plays out; then nobody speaks while the flow listens.
    caller
        .wait_until(Duration::from_secs(20), |r| !r.echoed_marks.is_empty() && r.speech_pending() == 0)
        .await
        .unwrap();
    let mut raised = Value::Null;
    for _ in 0..100 {
        let (_, list) = srv.get(&srv.key, "/api/v1/alerts?status=active").await;
        if let Some(a) = list["alerts"].as_array().unwrap().iter().find(|a| a["kind"] == "dead_air") {
            raised = a.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(raised["severity"], "warning", "no dead-air alert was raised");
    let id = raised["id"].as_str().unwrap().to_string();
    assert!(raised["data"]["silent_ms"].as_u64().unwrap() >= 800);

    caller.say(support::speech_ulaw("hello is anybody there").unwrap()).await;
    let mut resolved = Value::Null;
    for _ in 0..100 {
        let (_, list) = srv.get(&srv.key, "/api/v1/alerts?status=resolved").await;
        if let Some(a) = list["alerts"].as_array().unwrap().iter().find(|a| a["id"] == id.as_str()) {
            resolved = a.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(resolved["resolution"], "caller_spoke", "not resolved by the caller's speech: {resolved}");
    assert_eq!(resolved["resolved_by"], "system");
    // Both changes went out on the tenant's bus (what /ws/events relays). The evaluator stores
    // a change before publishing it, so the bus may be a moment behind what REST showed.
    let mut counts = (0, 0);
    for _ in 0..40 {
        let history = srv.events.subscribe(&srv.demo, Some(0)).missed;
        let of = |kind: &str| history.iter().filter(|e| e.kind == kind && e.data["id"] == id.as_str()).count();
        counts = (of("alert.raised"), of("alert.resolved"));
        if counts.1 > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(counts, (1, 1));
    caller.hangup().await.unwrap();
    srv.shutdown().await;
}
