//! The HTTP surface of a started server: health, readiness, metrics, auth, call logs.

mod db;

use std::time::Duration;

use db::{Backend, TestDb};
use switchboard::app::Server;
use switchboard::ids::CallId;
use switchboard::store::writer::WriteOp;
use switchboard::store::{now_ms, CallEventRecord, NewCall};
use tokio_util::sync::CancellationToken;

struct Running {
    base: String,
    key: String,
    state: switchboard::app::AppState,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(db: &TestDb) -> Running {
    let server = Server::start(db.config()).await.expect("server starts");
    let base = format!("http://{}", server.local_addr);
    let key = server.demo_key.clone().expect("embedded default creates a demo tenant");
    let state = server.state.clone();
    let stop = CancellationToken::new();
    let s = stop.clone();
    let task = tokio::spawn(server.run(async move { s.cancelled().await }));
    Running { base, key, state, stop, task }
}

impl Running {
    async fn shutdown(self) {
        self.stop.cancel();
        self.task.await.expect("server task").expect("clean exit");
    }
}

async fn operational_endpoints(backend: Backend) {
    let db = TestDb::new(backend).await;
    let srv = start(&db).await;
    let http = reqwest::Client::new();

    let r = http.get(format!("{}/health", srv.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"), "request ids are returned");

    let r = http.get(format!("{}/ready", srv.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["dependencies"][0]["kind"], "database");
    assert_eq!(body["dependencies"][0]["status"], "up");

    let r = http.get(format!("{}/metrics", srv.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = r.text().await.unwrap();
    for name in ["switchboard_calls_active", "switchboard_frames_in_total", "switchboard_frames_out_total"] {
        assert!(text.contains(name), "metrics lists {name}:\n{text}");
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn operational_endpoints_sqlite() {
    operational_endpoints(Backend::Sqlite).await;
}

#[tokio::test]
async fn operational_endpoints_postgres() {
    operational_endpoints(Backend::Postgres).await;
}

#[tokio::test]
async fn api_requires_a_valid_key_and_scopes_by_tenant() {
    let db = TestDb::new(Backend::Sqlite).await;
    let srv = start(&db).await;
    let http = reqwest::Client::new();
    let calls = format!("{}/api/v1/calls", srv.base);

    for auth in [None, Some("Bearer nope"), Some("Basic abc")] {
        let mut req = http.get(&calls);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "auth {auth:?}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }

    // A call recorded for the demo tenant is visible with its key, with its timeline.
    let demo = srv.state.store.authenticate(&srv.key).await.unwrap().unwrap().tenant;
    let call = NewCall {
        id: CallId::generate(),
        tenant_id: demo.id.clone(),
        transport: "twilio".into(),
        external_id: None,
        direction: "inbound".into(),
        from_number: None,
        to_number: None,
        flow: None,
        started_at: now_ms(),
    };
    srv.state.writer.submit(WriteOp::CallStarted(call.clone())).unwrap();
    srv.state
        .writer
        .submit(WriteOp::Event(CallEventRecord {
            tenant_id: demo.id.clone(),
            call_id: call.id.clone(),
            seq: 1,
            kind: "call.started".into(),
            at: now_ms(),
            data: "{\"transport\":\"twilio\"}".into(),
        }))
        .unwrap();
    let url = format!("{calls}/{}", call.id);
    let mut detail = serde_json::Value::Null;
    for _ in 0..50 {
        let r = http.get(&url).bearer_auth(&srv.key).send().await.unwrap();
        if r.status() == 200 {
            detail = r.json().await.unwrap();
            if detail["events"].as_array().is_some_and(|e| !e.is_empty()) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(detail["id"], call.id.as_str());
    assert_eq!(detail["events"][0]["kind"], "call.started");
    assert_eq!(detail["events"][0]["data"]["transport"], "twilio");

    // Another tenant's key sees neither the list entry nor the call.
    let (other, _) = srv.state.store.ensure_tenant("other").await.unwrap();
    let (_, other_key) = srv.state.store.create_api_key(&other.id, None).await.unwrap();
    let r = http.get(&url).bearer_auth(&other_key).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"]["code"], "not_found");
    let list: serde_json::Value = http.get(&calls).bearer_auth(&other_key).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["calls"].as_array().unwrap().len(), 0);
    let list: serde_json::Value = http.get(&calls).bearer_auth(&srv.key).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["calls"].as_array().unwrap().len(), 1);

    // Validation errors name the field.
    let r = http.get(format!("{calls}?limit=0")).bearer_auth(&srv.key).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"]["field"], "limit");
    let r = http.get(format!("{}/api/v1/nope", srv.base)).bearer_auth(&srv.key).send().await.unwrap();
    assert_eq!(r.status(), 404);
    srv.shutdown().await;
}

#[tokio::test]
async fn demo_key_survives_restart() {
    let db = TestDb::new(Backend::Sqlite).await;
    let first = start(&db).await;
    let key = first.key.clone();
    first.shutdown().await;
    let second = start(&db).await;
    assert_eq!(second.key, key, "the demo key is minted once");
    second.shutdown().await;
}

#[tokio::test]
async fn the_demo_seed_creates_departments_and_an_agent_once() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut cfg = db.config();
    assert!(!cfg.auth.demo_seed, "off unless asked for (make run asks)");
    cfg.auth.demo_seed = true;
    let mut agent_keys = Vec::new();
    for _ in 0..2 {
        let server = Server::start(cfg.clone()).await.unwrap();
        // The demo agent gets their own agent key, minted once.
        let agent_key = server.demo_agent_key.clone().expect("an agent key for the demo agent");
        let owner = server.state.store.authenticate(&agent_key).await.unwrap().unwrap();
        assert_eq!(owner.agent.as_ref().map(|a| a.as_str()), Some(switchboard::app::DEMO_AGENT));
        agent_keys.push(agent_key);
        let tenant = server.state.store.ensure_tenant("demo").await.unwrap().0;
        let names: Vec<String> = server.state.store.list_departments(&tenant.id).await.unwrap().into_iter().map(|d| d.name).collect();
        assert_eq!(names, ["billing", "sales", "support"], "the demo flow's departments, once");
        let agents = server.state.store.list_agents(&tenant.id).await.unwrap();
        assert_eq!(agents.len(), 1);
        assert_eq!(agents[0].id.as_str(), switchboard::app::DEMO_AGENT);
        assert_eq!(agents[0].departments.len(), 3);
        assert_eq!(agents[0].reach, switchboard::center::Reach::Browser);
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(server.run(async move { s.cancelled().await }));
        stop.cancel();
        task.await.unwrap().unwrap();
    }
    assert_eq!(agent_keys[0], agent_keys[1], "kept across restarts");
}

/// Stopping the database turns /ready to 503 and back; events written meanwhile are kept.
#[tokio::test]
async fn readiness_follows_the_database() {
    let cluster = db::PgCluster::start();
    let mut db = TestDb::new(Backend::Postgres).await;
    db.url = Some(cluster.url());
    let mut cfg = db.config();
    cfg.database.ready_timeout = Duration::from_millis(500);
    cfg.database.connect_timeout = Duration::from_millis(500);
    cfg.persistence.retry_backoff = Duration::from_millis(100);
    let server = Server::start(cfg).await.unwrap();
    let base = format!("http://{}", server.local_addr);
    let state = server.state.clone();
    let stop = CancellationToken::new();
    let s = stop.clone();
    let task = tokio::spawn(server.run(async move { s.cancelled().await }));
    let http = reqwest::Client::new();
    let ready = || async { http.get(format!("{base}/ready")).send().await.unwrap() };
    assert_eq!(ready().await.status(), 200);

    cluster.stop();
    let r = ready().await;
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["dependencies"][0]["status"], "down");
    assert!(body["dependencies"][0]["detail"].is_string());
    assert_eq!(http.get(format!("{base}/health")).send().await.unwrap().status(), 200, "liveness unaffected");

    let tenant = switchboard::ids::TenantId::generate();
    let call = CallId::generate();
    for seq in 1..=5 {
        state
            .writer
            .submit(WriteOp::Event(CallEventRecord {
                tenant_id: tenant.clone(),
                call_id: call.clone(),
                seq,
                kind: "k".into(),
                at: now_ms(),
                data: "{}".into(),
            }))
            .unwrap();
    }
    cluster.start_again();
    let mut status = 0;
    for _ in 0..50 {
        status = ready().await.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
    stop.cancel();
    task.await.unwrap().unwrap();
    let store = switchboard::store::Store::connect(&db.config().database, db.data_dir.path()).await.unwrap();
    assert_eq!(store.call_events(&tenant, &call).await.unwrap().len(), 5);
}
