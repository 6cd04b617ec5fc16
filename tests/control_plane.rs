//! The control-plane REST API against a started server, on SQLite and PostgreSQL:
//! departments, agents, queues, transfers, call control, call logs, analytics, OpenAPI,
//! tenant isolation, concurrency and restarts.

mod db;

use std::time::Duration;

use db::{Backend, TestDb};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchboard::app::Server;
use switchboard::center::acd::Enqueue;
use switchboard::center::AgentId;
use switchboard::ids::{CallId, TenantId};
use switchboard::store::writer::WriteOp;
use switchboard::store::{now_ms, NewCall};
use tokio_util::sync::CancellationToken;

struct Running {
    base: String,
    key: String,
    state: switchboard::app::AppState,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    http: reqwest::Client,
}

async fn start(db: &TestDb) -> Running {
    let server = Server::start(db.config()).await.expect("server starts");
    let base = format!("http://{}", server.local_addr);
    let key = server.demo_key.clone().expect("demo tenant");
    let state = server.state.clone();
    let stop = CancellationToken::new();
    let s = stop.clone();
    let task = tokio::spawn(server.run(async move { s.cancelled().await }));
    Running { base, key, state, stop, task, http: reqwest::Client::new() }
}

impl Running {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_as(&self.key, method, path, body).await
    }

    async fn call_as(&self, key: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}/api/v1{path}", self.base)).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn tenant(&self) -> TenantId {
        self.state.store.authenticate(&self.key).await.unwrap().unwrap().tenant.id
    }

    async fn shutdown(self) {
        self.stop.cancel();
        self.task.await.expect("server task").expect("clean exit");
    }
}

fn field(body: &Value) -> &str {
    body["error"]["field"].as_str().unwrap_or("")
}

macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(super::Backend::Sqlite).await;
            }
            #[tokio::test]
            async fn postgres() {
                super::$name(super::Backend::Postgres).await;
            }
        }
    };
}

async fn departments(backend: Backend) {
    let db = TestDb::new(backend).await;
    let srv = start(&db).await;
    let body = json!({ "name": "billing", "overflow_number": "+15550001111", "overflow": { "kind": "external" },
                       "business_hours": { "time_zone": "UTC", "open": ["daily 00:00-24:00"] }, "service_level_secs": 30, "max_queue": 5, "max_wait_secs": 120 });
    let (s, dep) = srv.call(Method::POST, "/departments", Some(body.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{dep}");
    assert_eq!((dep["name"].as_str(), dep["max_queue"].as_i64(), dep["overflow"]["kind"].as_str()), (Some("billing"), Some(5), Some("external")));
    let id = dep["id"].as_str().unwrap().to_string();
    let (s, e) = srv.call(Method::POST, "/departments", Some(body)).await;
    assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("conflict")));

    for (bad, f) in [
        (json!({}), "name"),
        (json!({ "name": "" }), "name"),
        (json!({ "name": "x", "max_queue": 0 }), "max_queue"),
        (json!({ "name": "x", "overflow": { "kind": "external" } }), "overflow_number"),
        (json!({ "name": "x", "overflow_number": "12" }), "overflow_number"),
        (json!({ "name": "x", "overflow": { "kind": "teleport" } }), "overflow.kind"),
        (json!({ "name": "x", "service_level_secs": "soon" }), "service_level_secs"),
        (json!({ "name": "x", "business_hours": { "mon": "09:00-17:00" } }), "business_hours"),
        (json!({ "name": "x", "business_hours": { "time_zone": "Mars/Base", "open": ["mon 09:00-17:00"] } }), "business_hours.time_zone"),
        (json!({ "name": "x", "business_hours": { "time_zone": "UTC", "open": [] } }), "business_hours.open"),
        (json!({ "name": "x", "business_hours": { "time_zone": "UTC", "open": ["mon-fri 09:00-17:00", "sat 17:00-09:00"] } }), "business_hours.open[1]"),
        (json!({ "name": "x", "business_hours": { "time_zone": "UTC", "open": ["daily 08:00-20:00"], "closed_dates": ["christmas"] } }), "business_hours.closed_dates[0]"),
    ] {
        let (s, e) = srv.call(Method::POST, "/departments", Some(bad.clone())).await;
        assert_eq!((s, field(&e)), (StatusCode::UNPROCESSABLE_ENTITY, f), "{bad} -> {e}");
        assert_eq!(e["error"]["code"], "validation_failed");
    }

    let (s, got) = srv.call(Method::GET, &format!("/departments/{id}"), None).await;
    assert_eq!((s, &got), (StatusCode::OK, &dep));
    let (s, upd) = srv.call(Method::PUT, &format!("/departments/{id}"), Some(json!({ "name": "billing", "max_queue": 9 }))).await;
    assert_eq!((s, upd["max_queue"].as_i64(), upd["overflow"].clone()), (StatusCode::OK, Some(9), Value::Null));
    let (s, list) = srv.call(Method::GET, "/departments", None).await;
    assert_eq!((s, list.as_array().unwrap().len()), (StatusCode::OK, 1));
    assert_eq!(srv.call(Method::GET, "/departments/dep_nope", None).await.0, StatusCode::NOT_FOUND);

    // Another tenant sees nothing of it.
    let (other, _) = srv.state.store.ensure_tenant("other").await.unwrap();
    let (_, other_key) = srv.state.store.create_api_key(&other.id, None).await.unwrap();
    let (s, list) = srv.call_as(&other_key, Method::GET, "/departments", None).await;
    assert_eq!((s, list), (StatusCode::OK, json!([])));
    assert_eq!(srv.call_as(&other_key, Method::GET, &format!("/departments/{id}"), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(srv.call_as(&other_key, Method::DELETE, &format!("/departments/{id}"), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(srv.call_as("nope", Method::GET, "/departments", None).await.0, StatusCode::UNAUTHORIZED);

    // A waiting call blocks deletion; once it leaves, the delete goes through.
    let tenant = srv.tenant().await;
    let call = CallId("call_waiting".into());
    srv.state.acd.enqueue(Enqueue::new(tenant.clone(), call.clone(), "billing")).await.unwrap();
    let (s, q) = srv.call(Method::GET, &format!("/departments/{id}/queue"), None).await;
    assert_eq!((s, q["calls"][0]["position"].as_u64(), q["calls"][0]["call_id"].as_str()), (StatusCode::OK, Some(1), Some("call_waiting")));
    let (s, all) = srv.call(Method::GET, "/queues", None).await;
    assert_eq!((s, all[0]["waiting"].as_u64(), all[0]["name"].as_str()), (StatusCode::OK, Some(1), Some("billing")));
    let (s, e) = srv.call(Method::DELETE, &format!("/departments/{id}"), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    srv.state.acd.call_ended(tenant.clone(), call.clone()).unwrap();
    let (_, q) = srv.call(Method::GET, &format!("/departments/{id}/queue"), None).await;
    assert_eq!(q["calls"], json!([]));
    let (s, report) = srv.call(Method::GET, &format!("/analytics/departments/{id}"), None).await;
    assert_eq!((s, report["calls"].as_u64(), report["abandoned"].as_u64(), report["answered"].as_u64()), (StatusCode::OK, Some(1), Some(1), Some(0)));
    assert_eq!(srv.call(Method::DELETE, &format!("/departments/{id}"), None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(srv.call(Method::GET, &format!("/departments/{id}"), None).await.0, StatusCode::NOT_FOUND);
    srv.shutdown().await;
}
both!(departments);

async fn agents_and_offers(backend: Backend) {
    let db = TestDb::new(backend).await;
    let srv = start(&db).await;
    let (_, dep) = srv.call(Method::POST, "/departments", Some(json!({ "name": "support" }))).await;
    let dep_id = dep["id"].as_str().unwrap().to_string();
    let (s, a) = srv
        .call(Method::POST, "/agents", Some(json!({ "id": "alice", "name": "Alice", "email": "alice@example.com",
            "departments": [dep_id], "skills": ["billing"], "languages": ["en", "de"], "reach": { "kind": "browser" } })))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    assert_eq!((a["id"].as_str(), a["status"].as_str(), a["departments"][0].as_str()), (Some("alice"), Some("offline"), Some(dep_id.as_str())));
    let (s, b) = srv
        .call(Method::POST, "/agents", Some(json!({ "name": "Bob", "departments": [dep_id], "reach": { "kind": "phone", "number": "+15552223333" } })))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let bob = b["id"].as_str().unwrap().to_string();

    for (bad, f) in [
        (json!({ "name": "X", "reach": { "kind": "phone", "number": "call me" } }), "reach.number"),
        (json!({ "name": "X", "reach": { "kind": "pigeon" } }), "reach.kind"),
        (json!({ "name": "X" }), "reach"),
        (json!({ "name": "X", "email": "nope", "reach": { "kind": "browser" } }), "email"),
        (json!({ "id": "bad id", "name": "X", "reach": { "kind": "browser" } }), "id"),
    ] {
        let (s, e) = srv.call(Method::POST, "/agents", Some(bad.clone())).await;
        assert_eq!((s, field(&e)), (StatusCode::UNPROCESSABLE_ENTITY, f), "{bad} -> {e}");
    }
    let (s, _) = srv.call(Method::POST, "/agents", Some(json!({ "name": "X", "departments": ["dep_nope"], "reach": { "kind": "browser" } }))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = srv.call(Method::POST, "/agents", Some(json!({ "id": "alice", "name": "A2", "reach": { "kind": "browser" } }))).await;
    assert_eq!(s, StatusCode::CONFLICT);

    let (_, l) = srv.call(Method::GET, "/agents?skill=BILLING", None).await;
    assert_eq!(l.as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect::<Vec<_>>(), vec!["alice"]);
    let (_, l) = srv.call(Method::GET, &format!("/agents?department={dep_id}&language=de"), None).await;
    assert_eq!(l.as_array().unwrap().len(), 1);
    let (s, e) = srv.call(Method::GET, "/agents?status=sleeping", None).await;
    assert_eq!((s, field(&e)), (StatusCode::UNPROCESSABLE_ENTITY, "status"));
    let (s, e) = srv.call(Method::PUT, "/agents/alice/status", Some(json!({ "status": "busy" }))).await;
    assert_eq!((s, field(&e)), (StatusCode::UNPROCESSABLE_ENTITY, "status"), "the server owns busy");
    let (s, e) = srv.call(Method::POST, "/agents/alice/accept", None).await;
    assert_eq!(s, StatusCode::CONFLICT, "nothing offered: {e}");
    assert_eq!(srv.call(Method::POST, "/agents/nobody/accept", None).await.0, StatusCode::NOT_FOUND);

    // A call waits; Alice becomes available and is offered it; she declines; accepts on the
    // next offer through the transfer's `complete`.
    let tenant = srv.tenant().await;
    let call = CallId("call_a".into());
    srv.state.acd.enqueue(Enqueue::new(tenant.clone(), call.clone(), "support")).await.unwrap();
    let (s, a) = srv.call(Method::PUT, "/agents/alice/status", Some(json!({ "status": "available" }))).await;
    // The distributor may already have offered her the waiting call by the time the answer is
    // read back: either is the truth at that moment.
    assert_eq!(s, StatusCode::OK);
    assert!(["available", "offered"].contains(&a["status"].as_str().unwrap()), "{a}");
    let (_, a) = srv.call(Method::GET, "/agents/alice", None).await;
    assert_eq!((a["status"].as_str(), a["current_call_id"].as_str()), (Some("offered"), Some("call_a")));
    let (s, e) = srv.call(Method::PUT, "/agents/alice/status", Some(json!({ "status": "away" }))).await;
    assert_eq!(s, StatusCode::CONFLICT, "no status change while offered: {e}");
    assert_eq!(srv.call(Method::DELETE, "/agents/alice", None).await.0, StatusCode::CONFLICT);
    let (_, transfers) = srv.call(Method::GET, "/calls/call_a/transfers", None).await;
    // The call record itself does not exist (no live call): 404 for history of unknown calls.
    assert_eq!(transfers["error"]["code"], "not_found");
    let transfer = srv.state.store.transfers_for_call(&tenant, &call).await.unwrap().remove(0);
    let (s, t) = srv.call(Method::GET, &format!("/transfers/{}", transfer.id), None).await;
    assert_eq!((s, t["state"].as_str(), t["agent_id"].as_str()), (StatusCode::OK, Some("offered"), Some("alice")));
    let (s, d) = srv.call(Method::POST, "/agents/alice/decline", None).await;
    assert_eq!((s, d["call_id"].as_str()), (StatusCode::OK, Some("call_a")));
    let (_, t) = srv.call(Method::GET, &format!("/transfers/{}", transfer.id), None).await;
    assert_eq!(t["state"], "queued");
    // Bob (phone) becomes available: dialled at once, busy, the transfer connected.
    let (s, _) = srv.call(Method::PUT, &format!("/agents/{bob}/status"), Some(json!({ "status": "available" }))).await;
    assert_eq!(s, StatusCode::OK);
    let (_, b) = srv.call(Method::GET, &format!("/agents/{bob}"), None).await;
    assert_eq!((b["status"].as_str(), b["current_call_id"].as_str()), (Some("busy"), Some("call_a")));
    let (_, t) = srv.call(Method::GET, &format!("/transfers/{}", transfer.id), None).await;
    assert_eq!((t["state"].as_str(), t["agent_id"].as_str()), (Some("connected"), Some(bob.as_str())));
    let (s, e) = srv.call(Method::POST, &format!("/transfers/{}/cancel", transfer.id), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "a connected transfer cannot be cancelled: {e}");
    srv.state.acd.call_ended(tenant.clone(), call).unwrap();
    let mut status = Value::Null;
    for _ in 0..50 {
        status = srv.call(Method::GET, &format!("/agents/{bob}"), None).await.1["status"].clone();
        if status == "wrap_up" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, "wrap_up");

    // Update and delete.
    let (s, a) = srv
        .call(Method::PUT, "/agents/alice", Some(json!({ "name": "Alice B", "skills": [], "reach": { "kind": "sip", "uri": "sip:alice@pbx.example.com" } })))
        .await;
    assert_eq!((s, a["name"].as_str(), a["departments"].clone()), (StatusCode::OK, Some("Alice B"), json!([])));
    let (s, _) = srv.call(Method::PUT, "/agents/alice/status", Some(json!({ "status": "offline" }))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(srv.call(Method::DELETE, "/agents/alice", None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(srv.call(Method::GET, "/agents/alice", None).await.0, StatusCode::NOT_FOUND);
    srv.shutdown().await;
}
both!(agents_and_offers);

async fn transfers_and_call_control(backend: Backend) {
    let db = TestDb::new(backend).await;
    let srv = start(&db).await;
    srv.call(Method::POST, "/departments", Some(json!({ "name": "sales" }))).await;
    let (s, e) = srv.call(Method::POST, "/transfers", Some(json!({ "call_id": "call_gone", "target_kind": "department", "target": "sales" }))).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
    let (s, e) = srv.call(Method::POST, "/transfers", Some(json!({ "target_kind": "department", "target": "sales" }))).await;
    assert_eq!((s, field(&e)), (StatusCode::UNPROCESSABLE_ENTITY, "call_id"));
    let (s, e) = srv.call(Method::POST, "/transfers", Some(json!({ "call_id": "c", "target_kind": "number", "target": "555" }))).await;
    assert_eq!((s, field(&e)), (StatusCode::UNPROCESSABLE_ENTITY, "target"));
    let (s, e) = srv.call(Method::POST, "/transfers", Some(json!({ "call_id": "c", "target_kind": "department", "target": "sales", "mode": "psychic" }))).await;
    assert_eq!((s, field(&e)), (StatusCode::UNPROCESSABLE_ENTITY, "mode"));
    assert_eq!(srv.call(Method::GET, "/transfers/xfr_nope", None).await.0, StatusCode::NOT_FOUND);
    for cmd in ["say", "play", "mute", "unmute", "hold", "unhold", "hangup"] {
        let body = match cmd {
            "say" => json!({ "text": "hello" }),
            "play" => json!({ "path": "a.wav" }),
            _ => json!({}),
        };
        let (s, e) = srv.call(Method::POST, &format!("/calls/call_gone/{cmd}"), Some(body)).await;
        assert_eq!((s, e["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{cmd}");
    }
    let (s, e) = srv.call(Method::POST, "/calls/call_gone/say", Some(json!({ "text": "" }))).await;
    assert_eq!((s, field(&e)), (StatusCode::UNPROCESSABLE_ENTITY, "text"));
    let (s, e) = srv.call(Method::POST, "/calls", Some(json!({ "to": "+15551230000", "from": "+15559870000" }))).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "no Twilio credentials in this config: {e}");

    // A queued transfer is cancelled through the API; cancelling twice is a conflict.
    let tenant = srv.tenant().await;
    srv.state.acd.enqueue(Enqueue::new(tenant.clone(), CallId("call_q".into()), "sales")).await.unwrap();
    let t = srv.state.store.transfers_for_call(&tenant, &CallId("call_q".into())).await.unwrap().remove(0);
    let (s, c) = srv.call(Method::POST, &format!("/transfers/{}/cancel", t.id), None).await;
    assert_eq!((s, c["state"].as_str()), (StatusCode::OK, Some("cancelled")));
    assert_eq!(srv.call(Method::POST, &format!("/transfers/{}/cancel", t.id), None).await.0, StatusCode::CONFLICT);
    assert_eq!(srv.call(Method::POST, &format!("/transfers/{}/complete", t.id), None).await.0, StatusCode::CONFLICT);
    let (_, q) = srv.call(Method::GET, "/queues", None).await;
    assert_eq!(q[0]["waiting"], 0);

    let (s, doc) = srv.call(Method::GET, "/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    for p in ["/api/v1/departments", "/api/v1/agents/{id}/status", "/api/v1/calls/{id}/say", "/api/v1/transfers", "/api/v1/queues", "/api/v1/analytics/departments/{id}"] {
        assert!(doc["paths"][p].is_object(), "{p} documented");
    }
    srv.shutdown().await;
}
both!(transfers_and_call_control);

async fn call_logs_filter_and_paginate(backend: Backend) {
    let db = TestDb::new(backend).await;
    let srv = start(&db).await;
    let tenant = srv.tenant().await;
    let t0 = now_ms() - 100_000;
    for i in 0..7 {
        srv.state
            .writer
            .submit(WriteOp::CallStarted(NewCall {
                id: CallId(format!("call_{i}")),
                tenant_id: tenant.clone(),
                transport: "twilio".into(),
                external_id: None,
                direction: "inbound".into(),
                from_number: Some(if i % 2 == 0 { "+15550000000".into() } else { "+15551111111".into() }),
                to_number: None,
                flow: None,
                started_at: t0 + i * 1000,
            }))
            .unwrap();
    }
    let mut seen = 0;
    for _ in 0..100 {
        seen = srv.call(Method::GET, "/calls?limit=50", None).await.1["calls"].as_array().map_or(0, Vec::len);
        if seen == 7 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(seen, 7);
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/calls?limit=3&cursor={c}"),
            None => "/calls?limit=3".to_string(),
        };
        let (s, page) = srv.call(Method::GET, &path, None).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        ids.extend(page["calls"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(ids, (0..7).rev().map(|i| format!("call_{i}")).collect::<Vec<_>>(), "newest first, each once");
    let (_, page) = srv.call(Method::GET, "/calls?caller=%2B15551111111", None).await;
    assert_eq!(page["calls"].as_array().unwrap().len(), 3);
    let (_, page) = srv.call(Method::GET, &format!("/calls?from={}&to={}", t0 + 2000, t0 + 4000), None).await;
    assert_eq!(page["calls"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect::<Vec<_>>(), vec!["call_3", "call_2"]);
    let (_, page) = srv.call(Method::GET, "/calls?status=active", None).await;
    assert_eq!(page["calls"].as_array().unwrap().len(), 7);
    let (s, e) = srv.call(Method::GET, "/calls?cursor=zzz", None).await;
    assert_eq!((s, field(&e)), (StatusCode::UNPROCESSABLE_ENTITY, "cursor"));
    // Department filter: only the call that was queued there.
    srv.call(Method::POST, "/departments", Some(json!({ "name": "support" }))).await;
    srv.state.acd.enqueue(Enqueue::new(tenant.clone(), CallId("call_4".into()), "support")).await.unwrap();
    let dep = srv.state.store.department_by_name(&tenant, "support").await.unwrap().unwrap();
    let (_, page) = srv.call(Method::GET, &format!("/calls?department={}", dep.id), None).await;
    assert_eq!(page["calls"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect::<Vec<_>>(), vec!["call_4"]);
    let (s, detail) = srv.call(Method::GET, "/calls/call_4", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!((detail["queue"].as_array().unwrap().len(), detail["figures"]["transfer_count"].as_u64()), (1, Some(1)));
    assert!(detail["figures"]["queue_wait_ms"].as_i64().unwrap() >= 0);
    srv.shutdown().await;
}
both!(call_logs_filter_and_paginate);

/// Many tasks race to offer calls to agents: every agent ends up with at most one call and
/// every call with at most one agent.
async fn concurrent_offers_never_double_assign(backend: Backend) {
    let db = TestDb::new(backend).await;
    let srv = start(&db).await;
    let tenant = srv.tenant().await;
    let (_, dep) = srv.call(Method::POST, "/departments", Some(json!({ "name": "d" }))).await;
    let mut agents = Vec::new();
    for i in 0..6 {
        let (_, a) = srv.call(Method::POST, "/agents", Some(json!({ "id": format!("ag{i}"), "name": "A", "departments": [dep["id"]], "reach": { "kind": "browser" } }))).await;
        agents.push(AgentId(a["id"].as_str().unwrap().into()));
        srv.call(Method::PUT, &format!("/agents/ag{i}/status"), Some(json!({ "status": "available" }))).await;
    }
    let mut tasks = Vec::new();
    for t in 0..24 {
        let store = srv.state.store.clone();
        let tenant = tenant.clone();
        let agents = agents.clone();
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for k in 0..6 {
                let agent = &agents[(t + k) % agents.len()];
                let call = CallId(format!("call_{}", (t * 7 + k) % 9));
                if store.offer_agent(&tenant, agent, &call, now_ms()).await.unwrap() {
                    won.push((agent.clone(), call));
                }
            }
            won
        }));
    }
    let mut wins = Vec::new();
    for t in tasks {
        wins.extend(t.await.unwrap());
    }
    let mut by_agent: Vec<_> = wins.iter().map(|(a, _)| a.clone()).collect();
    let mut by_call: Vec<_> = wins.iter().map(|(_, c)| c.clone()).collect();
    let n = wins.len();
    by_agent.sort();
    by_agent.dedup();
    by_call.sort();
    by_call.dedup();
    assert_eq!(by_agent.len(), n, "an agent was offered two calls: {wins:?}");
    assert_eq!(by_call.len(), n, "a call was offered to two agents: {wins:?}");
    assert_eq!(n, 6, "every agent got exactly one call");
    srv.shutdown().await;
}
both!(concurrent_offers_never_double_assign);

async fn survives_restart(backend: Backend) {
    let db = TestDb::new(backend).await;
    let srv = start(&db).await;
    let (_, dep) = srv.call(Method::POST, "/departments", Some(json!({ "name": "kept", "max_wait_secs": 77 }))).await;
    srv.call(Method::POST, "/agents", Some(json!({ "id": "k1", "name": "K", "departments": [dep["id"]], "reach": { "kind": "browser" } }))).await;
    srv.call(Method::PUT, "/agents/k1/status", Some(json!({ "status": "available" }))).await;
    let tenant = srv.tenant().await;
    srv.state.acd.enqueue(Enqueue::new(tenant, CallId("call_r".into()), "kept")).await.unwrap();
    srv.shutdown().await;

    let srv = start(&db).await;
    let (_, d) = srv.call(Method::GET, &format!("/departments/{}", dep["id"].as_str().unwrap()), None).await;
    assert_eq!(d["max_wait_secs"], 77);
    let (_, a) = srv.call(Method::GET, "/agents/k1", None).await;
    assert_eq!((a["status"].as_str(), a["current_call_id"].clone()), (Some("available"), Value::Null), "the offer died with the old run");
    let tenant = srv.tenant().await;
    let entries = srv.state.store.entries_for_call(&tenant, &CallId("call_r".into())).await.unwrap();
    assert_eq!(entries[0].outcome, Some(switchboard::center::EntryOutcome::Lost));
    srv.shutdown().await;
}
both!(survives_restart);
