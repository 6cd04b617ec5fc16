//! Agent keys: what a key minted for one agent may and may not do.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::env::start;
use crate::support::webrtc_client::Client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_key_acts_as_its_agent_only() {
    let env = start().await;
    env.department("support", &["ana", "bo"]).await;
    // A tenant key mints Ana's key: the key itself is shown once, the list keeps its prefix.
    let (s, made) = env.post_json("/api/v1/agents/ana/keys", json!({ "label": "ana's laptop" })).await;
    assert_eq!(s, StatusCode::CREATED, "{made}");
    let key = made["key"].as_str().unwrap().to_string();
    let listed: Value = env.http(Method::GET, "/api/v1/agents/ana/keys").send().await.unwrap().json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["prefix"], key[..9]);
    assert!(listed[0].get("key").is_none(), "the key is never shown again");
    let status = |m: Method, p: &str| {
        let req = env.http_as(&key, m, p);
        async move { req.send().await.unwrap().status() }
    };

    // Ana's key is Ana: her record, her status, the department list; nothing of the tenant's.
    let me: Value = env.http_as(&key, Method::GET, "/api/v1/me").send().await.unwrap().json().await.unwrap();
    assert_eq!(me["agent_id"], "ana");
    assert_eq!(status(Method::GET, "/api/v1/agents/ana").await, StatusCode::OK);
    assert_eq!(status(Method::GET, "/api/v1/departments").await, StatusCode::OK);
    let refused = env.http_as(&key, Method::GET, "/api/v1/agents/bo").send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden", "{body}");
    for (m, p) in [(Method::GET, "/api/v1/agents"), (Method::GET, "/api/v1/calls"), (Method::POST, "/api/v1/agents/ana/keys"), (Method::GET, "/api/v1/alerts")] {
        assert_eq!(status(m.clone(), p).await, StatusCode::FORBIDDEN, "{m} {p}");
    }
    let resp = env.http_as(&key, Method::PUT, "/api/v1/agents/bo/status").json(&json!({ "status": "available" })).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // Her event stream follows her own agent and the calls offered to her.
    let url = format!("ws://{}/ws/events?api_key={key}", env.host);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let resp = env.http_as(&key, Method::PUT, "/api/v1/agents/ana/status").json(&json!({ "status": "available" })).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (other_caller, other) = env.phone_call("CA_not_hers").await;
    env.set_status("bo", "away").await;
    let (caller, call) = env.phone_call("CA_hers").await;
    env.post_json(&format!("/api/v1/calls/{call}/transfer"), json!({ "target_kind": "department", "target": "support" })).await;
    env.wait_agent("ana", "offered").await;
    assert_eq!(status(Method::GET, &format!("/api/v1/calls/{call}")).await, StatusCode::OK);
    assert_eq!(status(Method::GET, &format!("/api/v1/calls/{other}")).await, StatusCode::FORBIDDEN);
    assert_eq!(status(Method::POST, &format!("/api/v1/calls/{other}/hold")).await, StatusCode::FORBIDDEN);
    assert_eq!(status(Method::POST, "/api/v1/agents/ana/accept").await, StatusCode::OK);

    // She joins only as herself.
    for query in ["role=supervisor&mode=listen", "role=agent&agent_id=bo"] {
        let (_peer, offer) = Client::new().await;
        assert_eq!(env.post_offer(&key, &call, query, offer).await.status(), StatusCode::FORBIDDEN, "{query}");
    }
    let (mut peer, offer) = Client::new().await;
    let mine = env.join_as(&key, &call, "role=agent&agent_id=ana", &mut peer, offer).await;
    env.call(&call, |c| c["events"].as_array().unwrap().iter().any(|e| e["kind"] == "participant_joined")).await;
    let (mut sup, offer) = Client::new().await;
    let theirs = env.join(&call, "role=supervisor&mode=listen&name=sam", &mut sup, offer).await;
    assert_eq!(status(Method::DELETE, &theirs).await, StatusCode::FORBIDDEN, "not her session");
    assert_eq!(status(Method::POST, &format!("/api/v1/calls/{call}/hold")).await, StatusCode::ACCEPTED);
    assert_eq!(status(Method::POST, &format!("/api/v1/calls/{call}/unhold")).await, StatusCode::ACCEPTED);

    // She hangs up, wraps up and files the disposition as herself only.
    assert_eq!(status(Method::DELETE, &mine).await, StatusCode::OK);
    env.wait_agent("ana", "wrap_up").await;
    let disposition = |agent: &str| {
        let req = env.http_as(&key, Method::POST, &format!("/api/v1/calls/{call}/disposition"));
        let body = json!({ "agent_id": agent, "disposition": "resolved", "notes": "" });
        async move { req.json(&body).send().await.unwrap().status() }
    };
    assert_eq!(disposition("bo").await, StatusCode::FORBIDDEN);
    assert_eq!(disposition("ana").await, StatusCode::CREATED);
    assert_eq!(status(Method::GET, &format!("/api/v1/calls/{call}")).await, StatusCode::OK, "a call she answered stays readable");

    let mut seen = Vec::new();
    while !seen.iter().any(|e: &Value| e["kind"] == "call.disposition") {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("events keep coming").unwrap().unwrap();
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] == "event" {
                seen.push(v);
            }
        }
    }
    assert!(seen.iter().any(|e| e["kind"] == "agent.status" && e["data"]["status"] == "offered"), "her offer");
    assert!(seen.iter().any(|e| e["call_id"] == call.as_str() && e["kind"] == "call.participant_joined"), "her call's events");
    for e in &seen {
        assert_ne!(e["call_id"], other.as_str(), "another call's event reached her: {e}");
        if e["kind"].as_str().unwrap().starts_with("agent.") {
            assert_eq!(e["data"]["agent_id"], "ana", "another agent's event reached her: {e}");
        }
    }

    // Revoked, the key stops working at once.
    let id = made["id"].as_str().unwrap();
    assert_eq!(env.http(Method::DELETE, &format!("/api/v1/agents/ana/keys/{id}")).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(status(Method::GET, "/api/v1/me").await, StatusCode::UNAUTHORIZED);
    peer.close().await;
    sup.close().await;
    caller.hangup().await.ok();
    other_caller.hangup().await.unwrap();
    env.shutdown().await;
}
