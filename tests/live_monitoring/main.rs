//! People on the line: a phone caller (the Twilio test client) is transferred to a browser
//! agent (a `webrtc`-crate peer) who accepts and talks; a supervisor (another peer) listens,
//! whispers and barges in. Each leg sends its own test tone, so what each side hears is
//! checked by frequency analysis: caller 600 Hz, agent 1000 Hz, supervisor 1700 Hz.

#[path = "../db/mod.rs"]
mod db;
#[path = "../support/mod.rs"]
mod support;

mod agent_keys;
mod env;

use std::time::{Duration, Instant};

use env::{count, hold_switches, start, start_with};
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::twilio_caller::{Received, Recording};
use support::webrtc_client::Client;
use switchboard::speech::providers::SttChoice;

const CALLER_HZ: f64 = 600.0;
const AGENT_HZ: f64 = 1000.0;
const SUPERVISOR_HZ: f64 = 1700.0;
const AMPLITUDE: f64 = 6000.0;
/// A tone this loud (amplitude) in a window is "heard"; below `ABSENT` it is not.
const PRESENT: f64 = 1500.0;
const ABSENT: f64 = 300.0;

fn tone(hz: f64, rate: f64, seconds: f64) -> Vec<i16> {
    let n = (rate * seconds) as usize;
    (0..n).map(|i| (AMPLITUDE * (2.0 * std::f64::consts::PI * hz * i as f64 / rate).sin()) as i16).collect()
}

/// The amplitude of the `hz` component of `samples` (Goertzel), comparable to a sine's peak.
fn level(samples: &[i16], rate: f64, hz: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * hz / rate;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power.max(0.0).sqrt() / samples.len() as f64
}

/// What a peer heard (16 kHz) between two instants.
fn peer_audio(client: &Client, from: Instant, to: Instant) -> Vec<i16> {
    let heard = client.heard.lock().unwrap();
    heard.frames.iter().filter(|(at, _)| *at >= from && *at < to).flat_map(|(_, f)| f.iter().copied()).collect()
}

/// What the caller was sent (8 kHz) between two points of its recording.
fn caller_audio(rec: &Recording, from: usize, to: usize) -> Vec<i16> {
    rec.received[from..to]
        .iter()
        .filter_map(|r| match r {
            Received::Media { bytes, .. } => Some(bytes.iter().map(|&b| media::codec::g711::ulaw_decode(b))),
            _ => None,
        })
        .flatten()
        .collect()
}

struct Levels {
    caller: f64,
    agent: f64,
    supervisor: f64,
}

fn levels(samples: &[i16], rate: f64) -> Levels {
    Levels { caller: level(samples, rate, CALLER_HZ), agent: level(samples, rate, AGENT_HZ), supervisor: level(samples, rate, SUPERVISOR_HZ) }
}

/// Sends a tone from a peer for `seconds`, in real time, on its own task.
fn speak(mut client: Client, hz: f64, seconds: f64) -> tokio::task::JoinHandle<Client> {
    tokio::spawn(async move {
        client.say(&tone(hz, 48_000.0, seconds)).await;
        client
    })
}

/// One phase of the call: how long to let audio settle after a change, then the window.
const SETTLE: Duration = Duration::from_millis(600);
const WINDOW: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_takes_the_call_and_a_supervisor_listens_whispers_and_barges() {
    let env = start().await;
    env.department("support", &["ana"]).await;
    env.set_status("ana", "available").await;

    // A phone call, handed to the support queue; Ana is offered it and accepts.
    let (caller, call) = env.phone_call("CA_live_1").await;
    let (s, body) = env.post_json(&format!("/api/v1/calls/{call}/transfer"), json!({ "target_kind": "department", "target": "support", "reason": "billing question" })).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    env.wait_agent("ana", "offered").await;

    // Before accepting, the call is not hers: joining is refused with a reason.
    let (mut agent_peer, offer) = Client::new().await;
    let early = env.post_offer(&env.key, &call, "role=agent&agent_id=ana", offer.clone()).await;
    assert_eq!(early.status(), StatusCode::CONFLICT);
    assert!(early.text().await.unwrap().contains("accept the offer first"));

    let (s, body) = env.post_json("/api/v1/agents/ana/accept", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let agent_location = env.join(&call, "role=agent&agent_id=ana", &mut agent_peer, offer).await;
    let detail = env.call(&call, |c| c["events"].as_array().unwrap().iter().any(|e| e["kind"] == "participant_joined")).await;
    assert!(detail["events"].as_array().unwrap().iter().any(|e| e["kind"] == "hold" && e["data"]["on"] == false), "the hold ends when the agent joins");

    // A second agent cannot take the same call.
    let (_, offer2) = Client::new().await;
    let second = env.post_offer(&env.key, &call, "role=agent&agent_id=ana", offer2).await;
    assert_eq!(second.status(), StatusCode::CONFLICT);

    // Everyone speaks their tone for the rest of the test.
    caller.say(tone(CALLER_HZ, 8000.0, 12.0).iter().map(|&s| media::codec::g711::ulaw_encode(s)).collect()).await;
    let agent_talk = speak(agent_peer, AGENT_HZ, 12.0);
    let (mut sup_peer, offer) = Client::new().await;
    let sup_location = env.join(&call, "role=supervisor&mode=listen&name=sam", &mut sup_peer, offer).await;
    // A supervisor whose browser stopped reading: it must cost the call nothing.
    let (mut stalled, offer) = Client::stalled().await;
    env.join(&call, "role=supervisor&mode=listen&name=stuck", &mut stalled, offer).await;
    let sup_heard = sup_peer.heard.clone();
    let sup_talk = speak(sup_peer, SUPERVISOR_HZ, 12.0);

    // Listen: the supervisor hears caller and agent; nobody hears the supervisor.
    tokio::time::sleep(SETTLE).await;
    let (t0, n0) = (Instant::now(), caller.recording().received.len());
    tokio::time::sleep(WINDOW).await;
    let (t1, n1) = (Instant::now(), caller.recording().received.len());
    let sup_listen = {
        let frames = sup_heard.lock().unwrap();
        let audio: Vec<i16> = frames.frames.iter().filter(|(at, _)| *at >= t0 && *at < t1).flat_map(|(_, f)| f.iter().copied()).collect();
        levels(&audio, 16_000.0)
    };
    let to_caller = levels(&caller_audio(&caller.recording(), n0, n1), 8000.0);
    assert!(sup_listen.caller > PRESENT && sup_listen.agent > PRESENT, "listen hears both sides: {:.0}/{:.0}", sup_listen.caller, sup_listen.agent);
    assert!(to_caller.agent > PRESENT, "the caller hears the agent: {:.0}", to_caller.agent);
    assert!(to_caller.supervisor < ABSENT, "the caller does not hear a listener: {:.0}", to_caller.supervisor);
    assert!(to_caller.caller < ABSENT, "no echo of the caller: {:.0}", to_caller.caller);
    // The caller's audio went out live, one frame per tick, despite the stalled supervisor.
    let frames = caller.recording().received[n0..n1].iter().filter(|r| matches!(r, Received::Media { .. })).count();
    let expected = (t1 - t0).as_millis() as usize / 20;
    assert!(frames * 10 >= expected * 8, "{frames} frames in {expected} ticks");

    // Whisper: the agent hears the supervisor; the caller still does not.
    env.set_mode(&sup_location, "whisper").await;
    tokio::time::sleep(SETTLE).await;
    let (w0, m0) = (Instant::now(), caller.recording().received.len());
    tokio::time::sleep(WINDOW).await;
    let (w1, m1) = (Instant::now(), caller.recording().received.len());
    let to_caller = levels(&caller_audio(&caller.recording(), m0, m1), 8000.0);
    assert!(to_caller.supervisor < ABSENT, "a whisper never reaches the caller: {:.0}", to_caller.supervisor);
    assert!(to_caller.agent > PRESENT);

    // Barge: everyone hears the supervisor.
    env.set_mode(&sup_location, "barge").await;
    tokio::time::sleep(SETTLE).await;
    let (b0, k0) = (Instant::now(), caller.recording().received.len());
    tokio::time::sleep(WINDOW).await;
    let (b1, k1) = (Instant::now(), caller.recording().received.len());
    let to_caller = levels(&caller_audio(&caller.recording(), k0, k1), 8000.0);
    assert!(to_caller.supervisor > PRESENT && to_caller.agent > PRESENT, "barge is heard by the caller: {:.0}", to_caller.supervisor);

    let agent_peer = agent_talk.await.unwrap();
    let agent_whisper = levels(&peer_audio(&agent_peer, w0, w1), 16_000.0);
    let agent_listen = levels(&peer_audio(&agent_peer, t0, t1), 16_000.0);
    let agent_barge = levels(&peer_audio(&agent_peer, b0, b1), 16_000.0);
    assert!(agent_listen.caller > PRESENT, "the agent hears the caller: {:.0}", agent_listen.caller);
    assert!(agent_listen.supervisor < ABSENT, "the agent does not hear a listener: {:.0}", agent_listen.supervisor);
    assert!(agent_listen.agent < ABSENT, "nobody hears themselves: {:.0}", agent_listen.agent);
    assert!(agent_whisper.supervisor > PRESENT, "the agent hears a whisper: {:.0}", agent_whisper.supervisor);
    assert!(agent_barge.supervisor > PRESENT);
    let sup_peer = sup_talk.await.unwrap();
    let sup_barge = levels(&peer_audio(&sup_peer, b0, b1), 16_000.0);
    assert!(sup_barge.supervisor < ABSENT, "a supervisor does not hear themselves: {:.0}", sup_barge.supervisor);

    // Modes only apply to supervisors.
    let resp = env.http(reqwest::Method::PATCH, &agent_location).json(&json!({ "mode": "barge" })).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let resp = env.http(reqwest::Method::PATCH, &sup_location).json(&json!({ "mode": "shout" })).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // The agent hangs up: the call ends, the agent wraps up and files a disposition.
    let resp = env.http(reqwest::Method::DELETE, &agent_location).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let rec = caller.wait_closed(Duration::from_secs(5)).await.unwrap();
    assert!(rec.violations.is_empty(), "{:?}", rec.violations);
    let ended = env.call(&call, |c| c["end_cause"] == "agent_hangup").await;
    env.wait_agent("ana", "wrap_up").await;
    let (s, saved) = env
        .post_json(&format!("/api/v1/calls/{call}/disposition"), json!({ "agent_id": "ana", "disposition": "resolved", "notes": "refund issued" }))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{saved}");
    let (s, _) = env.post_json(&format!("/api/v1/calls/{call}/disposition"), json!({ "agent_id": "nobody", "disposition": "x" })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = env.post_json("/api/v1/calls/call_missing/disposition", json!({ "agent_id": "ana", "disposition": "x" })).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let detail = env.call(&call, |c| c["events"].as_array().unwrap().iter().any(|e| e["kind"] == "disposition")).await;
    let kinds: Vec<(&str, Value)> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| ["participant_joined", "participant_left", "monitor_mode", "disposition"].contains(&e["kind"].as_str().unwrap()))
        .map(|e| (e["kind"].as_str().unwrap(), e["data"].clone()))
        .collect();
    let joined: Vec<_> = kinds.iter().filter(|(k, _)| *k == "participant_joined").map(|(_, d)| d["role"].as_str().unwrap()).collect();
    assert_eq!(joined, ["agent", "supervisor", "supervisor"]);
    let modes: Vec<_> = kinds.iter().filter(|(k, _)| *k == "monitor_mode").map(|(_, d)| d["to"].as_str().unwrap()).collect();
    assert_eq!(modes, ["whisper", "barge"]);
    assert_eq!(kinds.iter().filter(|(k, _)| *k == "participant_left").count(), 3, "everyone left: {kinds:?}");
    let disposition = kinds.iter().find(|(k, _)| *k == "disposition").unwrap();
    assert_eq!(disposition.1["notes"], "refund issued");
    assert_eq!(kinds.last().unwrap().0, "disposition", "filed after the call's own events");
    assert_eq!(ended["end_cause"], "agent_hangup");

    // Sessions are gone with the call.
    for _ in 0..50 {
        if env.webrtc.participant_count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(env.webrtc.participant_count(), 0);
    agent_peer.close().await;
    sup_peer.close().await;
    stalled.close().await;
    env.shutdown().await;
}

#[tokio::test]
async fn joining_needs_an_api_key_a_live_call_and_a_valid_role() {
    let env = start().await;
    let (_, offer) = Client::new().await;
    let post = |path: String, auth: Option<&str>| {
        let mut req = reqwest::Client::new().post(format!("{}{path}", env.base)).header("content-type", "application/sdp").body(offer.clone());
        if let Some(a) = auth {
            req = req.bearer_auth(a);
        }
        req.send()
    };
    assert_eq!(post("/webrtc/calls/call_x/participants?role=supervisor".into(), None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(post("/webrtc/calls/call_x/participants?role=supervisor".into(), Some("wct_caller_token")).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(post("/webrtc/calls/call_x/participants?role=supervisor".into(), Some(&env.key)).await.unwrap().status(), StatusCode::NOT_FOUND);
    let bad_role = post("/webrtc/calls/call_x/participants?role=janitor".into(), Some(&env.key)).await.unwrap();
    assert_eq!(bad_role.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad_role.text().await.unwrap().contains("role must be agent or supervisor"));
    let bad_mode = post("/webrtc/calls/call_x/participants?role=supervisor&mode=shout".into(), Some(&env.key)).await.unwrap();
    assert_eq!(bad_mode.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let garbage = reqwest::Client::new()
        .post(format!("{}/webrtc/calls/call_x/participants?role=supervisor", env.base))
        .bearer_auth(&env.key)
        .header("content-type", "application/sdp")
        .body("not sdp at all")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
    let missing = env.http(reqwest::Method::DELETE, "/webrtc/participants/part_nope").send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_sends_the_call_onward_and_the_next_agent_takes_it() {
    let env = start().await;
    env.department("support", &["ana"]).await;
    env.department("billing", &["bo"]).await;
    for id in ["ana", "bo"] {
        env.set_status(id, "available").await;
    }
    let (caller, call) = env.phone_call("CA_onward").await;
    let (s, _) = env.post_json(&format!("/api/v1/calls/{call}/transfer"), json!({ "target_kind": "department", "target": "support" })).await;
    assert_eq!(s, StatusCode::CREATED);
    env.wait_agent("ana", "offered").await;
    assert_eq!(env.post_json("/api/v1/agents/ana/accept", json!({})).await.0, StatusCode::OK);
    let (mut ana, offer) = Client::new().await;
    env.join(&call, "role=agent&agent_id=ana", &mut ana, offer).await;

    // Ana sends the caller to billing: she is out of the call and wrapping up; Bo takes it.
    let (s, t) = env.post_json(&format!("/api/v1/calls/{call}/transfer"), json!({ "target_kind": "department", "target": "billing", "reason": "refund" })).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    env.wait_agent("ana", "wrap_up").await;
    env.wait_agent("bo", "offered").await;
    let detail = env
        .call(&call, |c| c["events"].as_array().unwrap().iter().any(|e| e["kind"] == "participant_left" && e["data"]["reason"] == "transferred"))
        .await;
    assert!(detail["events"].as_array().unwrap().iter().any(|e| e["kind"] == "hold" && e["data"]["on"] == true));
    assert_eq!(env.post_json("/api/v1/agents/bo/accept", json!({})).await.0, StatusCode::OK);
    let (mut bo, offer) = Client::new().await;
    let bo_location = env.join(&call, "role=agent&agent_id=bo", &mut bo, offer).await;
    env.call(&call, |c| {
        c["events"].as_array().unwrap().iter().any(|e| e["kind"] == "participant_joined" && e["data"]["agent_id"] == "bo")
    })
    .await;
    assert!(!caller.recording().ended, "the caller is still on the line");

    let resp = env.http(reqwest::Method::DELETE, &bo_location).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    caller.wait_closed(Duration::from_secs(5)).await.unwrap();
    env.call(&call, |c| c["end_cause"] == "agent_hangup").await;
    env.wait_agent("bo", "wrap_up").await;
    ana.close().await;
    bo.close().await;
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_audio_never_connects_leaves_the_caller_on_hold_to_join_again() {
    let env = start_with(|cfg| cfg.webrtc.connect_timeout = Duration::from_secs(1)).await;
    env.department("support", &["ana"]).await;
    env.set_status("ana", "available").await;
    let (caller, call) = env.phone_call("CA_noice").await;
    env.post_json(&format!("/api/v1/calls/{call}/transfer"), json!({ "target_kind": "department", "target": "support" })).await;
    env.wait_agent("ana", "offered").await;
    assert_eq!(env.post_json("/api/v1/agents/ana/accept", json!({})).await.0, StatusCode::OK);

    // The offer is answered but the answer never applied: ICE never connects.
    let (lost, offer) = Client::new().await;
    let resp = env.post_offer(&env.key, &call, "role=agent&agent_id=ana", offer).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let detail = env
        .call(&call, |c| c["events"].as_array().unwrap().iter().any(|e| e["kind"] == "participant_left" && e["data"]["reason"] == "connect_timeout"))
        .await;
    let holds = hold_switches(detail["events"].as_array().unwrap());
    assert_eq!(holds.last(), Some(&true), "back on hold: {holds:?}");
    assert!(!caller.recording().ended, "the caller is still on the line");
    assert_eq!(env.agent("ana").await["status"], "busy", "still hers");

    // Her second try gets through.
    let (mut again, offer) = Client::new().await;
    env.join(&call, "role=agent&agent_id=ana", &mut again, offer).await;
    env.call(&call, |c| count(c, "participant_joined") == 2).await;
    lost.close().await;
    again.close().await;
    let rec = caller.hangup().await.unwrap();
    assert!(rec.violations.is_empty(), "{:?}", rec.violations);
    env.wait_agent("ana", "wrap_up").await;
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_connection_drops_keeps_the_caller_on_hold_to_rejoin_or_the_call_queues_again() {
    let env = start_with(|cfg| {
        cfg.center.offer_timeout = Duration::from_secs(2);
        // A browser that stops sending is noticed in 2 s rather than 25.
        cfg.webrtc.ice_failed_timeout = Duration::from_secs(2);
    })
    .await;
    env.department("support", &["ana", "bo"]).await;
    env.set_status("ana", "available").await;
    let (caller, call) = env.phone_call("CA_drop").await;
    env.post_json(&format!("/api/v1/calls/{call}/transfer"), json!({ "target_kind": "department", "target": "support" })).await;
    env.wait_agent("ana", "offered").await;
    assert_eq!(env.post_json("/api/v1/agents/ana/accept", json!({})).await.0, StatusCode::OK);
    let (mut first, offer) = Client::new().await;
    env.join(&call, "role=agent&agent_id=ana", &mut first, offer).await;
    let joined = |n: usize| move |c: &Value| count(c, "participant_joined") == n;
    env.call(&call, joined(1)).await;

    // Her browser goes away without hanging up: the caller is put on hold, not hung up on.
    first.close().await;
    let left = |n: usize| move |c: &Value| count(c, "participant_left") == n;
    let detail = env.call(&call, left(1)).await;
    let events = detail["events"].as_array().unwrap();
    let gone = events.iter().find(|e| e["kind"] == "participant_left").unwrap();
    assert!(["peer_closed", "connection_lost"].contains(&gone["data"]["reason"].as_str().unwrap()), "{gone}");
    let holds = hold_switches(events);
    assert_eq!(holds.last(), Some(&true), "back on hold: {holds:?}");
    assert!(!events.iter().any(|e| e["kind"] == "ended"), "the call goes on");
    assert!(!caller.recording().ended, "the caller is still on the line");
    assert_eq!(env.agent("ana").await["status"], "busy", "still hers to rejoin");

    // She rejoins in time and has the caller again.
    let (mut second, offer) = Client::new().await;
    env.join(&call, "role=agent&agent_id=ana", &mut second, offer).await;
    let detail = env.call(&call, joined(2)).await;
    let holds = hold_switches(detail["events"].as_array().unwrap());
    assert_eq!(holds.last(), Some(&false), "off hold with her: {holds:?}");

    // Her connection drops again and she does not come back: after the offer timeout she is
    // away and the call queues again for the next agent, the caller on hold throughout.
    env.set_status("bo", "available").await;
    second.close().await;
    env.call(&call, left(2)).await;
    env.wait_agent("ana", "away").await;
    env.wait_agent("bo", "offered").await;
    assert!(!caller.recording().ended);
    caller.hangup().await.unwrap();
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_phrase_only_recognizer_an_agent_is_heard_but_not_transcribed() {
    // Pocketsphinx in grammar mode would turn the agent's words into the nearest flow phrase.
    let env = start_with(|cfg| cfg.speech.stt = SttChoice::Pocketsphinx).await;
    env.department("support", &["ana"]).await;
    env.set_status("ana", "available").await;
    let (caller, call) = env.phone_call("CA_grammar").await;
    env.post_json(&format!("/api/v1/calls/{call}/transfer"), json!({ "target_kind": "department", "target": "support" })).await;
    env.wait_agent("ana", "offered").await;
    assert_eq!(env.post_json("/api/v1/agents/ana/accept", json!({})).await.0, StatusCode::OK);
    let (mut ana, offer) = Client::new().await;
    env.join(&call, "role=agent&agent_id=ana", &mut ana, offer).await;
    ana.say(&support::webrtc_client::speech_48k("let me check your billing account")).await;
    ana.silence(Duration::from_millis(1200)).await;
    let detail = env.call(&call, |c| count(c, "agent_speech_ended") > 0).await;
    let events = detail["events"].as_array().unwrap();
    let agent_lines: Vec<_> = events.iter().filter(|e| e["kind"] == "transcript_final" && e["data"]["speaker"] == "agent").collect();
    assert!(agent_lines.is_empty(), "no made-up agent transcript: {agent_lines:?}");
    ana.close().await;
    caller.hangup().await.unwrap();
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whisper_with_no_agent_goes_to_the_bots_transcript_only() {
    let env = start().await;
    let (caller, call) = env.phone_call("CA_whisper").await;
    let (mut sup, offer) = Client::new().await;
    env.join(&call, "role=supervisor&mode=whisper&name=sam", &mut sup, offer).await;
    sup.say(&support::webrtc_client::speech_48k("billing please")).await;
    sup.silence(Duration::from_millis(1200)).await;

    // The null recognizer reports each turn as "[speech]": the whisper was recognized as the
    // supervisor's, on the call's transcript, and the flow did not act on it as the caller's.
    let detail = env
        .call(&call, |c| c["events"].as_array().unwrap().iter().any(|e| e["kind"] == "transcript_final" && e["data"]["speaker"] == "supervisor"))
        .await;
    let events = detail["events"].as_array().unwrap();
    assert!(!events.iter().any(|e| e["kind"] == "transcript_final" && e["data"]["speaker"] == "caller"), "the caller said nothing");
    let lines = detail["transcript"].as_array().unwrap();
    assert!(lines.iter().any(|l| l["speaker"] == "supervisor"), "the call log's transcript names the supervisor: {lines:?}");
    assert!(!lines.iter().any(|l| l["speaker"] == "caller"), "{lines:?}");
    assert!(!events.iter().any(|e| e["kind"] == "transfer_requested"));
    assert!(!events.iter().any(|e| e["kind"] == "agent_speech_started"), "a whisper is not an agent talking");
    sup.close().await;
    let rec = caller.hangup().await.unwrap();
    assert!(rec.violations.is_empty(), "{:?}", rec.violations);
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_to_a_browser_agent_rings_them_first_then_their_department() {
    let env = start().await;
    env.department("billing", &["cy", "bo"]).await;
    // Cy has been idle longest, so a department transfer would go to Cy.
    for id in ["cy", "bo"] {
        env.set_status(id, "available").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (caller, call) = env.phone_call("CA_direct").await;
    let (s, t) = env.post_json(&format!("/api/v1/calls/{call}/transfer"), json!({ "target_kind": "agent", "target": "bo", "reason": "asked for Bo" })).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    assert_eq!(t["agent_id"], "bo");
    env.wait_agent("bo", "offered").await;
    assert_eq!(env.agent("cy").await["status"], "available", "only Bo is asked");

    // Bo declines: the department takes the call.
    assert_eq!(env.post_json("/api/v1/agents/bo/decline", json!({})).await.0, StatusCode::OK);
    env.wait_agent("cy", "offered").await;
    caller.hangup().await.unwrap();
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_who_accepts_and_never_joins_is_set_away_and_the_call_queues_again() {
    let env = start_with(|cfg| cfg.center.offer_timeout = Duration::from_secs(1)).await;
    env.department("support", &["ana", "bo"]).await;
    env.set_status("ana", "available").await;
    let (caller, call) = env.phone_call("CA_noshow").await;
    env.post_json(&format!("/api/v1/calls/{call}/transfer"), json!({ "target_kind": "department", "target": "support" })).await;
    env.wait_agent("ana", "offered").await;
    env.set_status("bo", "available").await;
    assert_eq!(env.post_json("/api/v1/agents/ana/accept", json!({})).await.0, StatusCode::OK);

    // Ana's browser never joins the call's audio: after the offer timeout she is away and Bo,
    // the next free agent, is offered the call; the caller waited on hold throughout.
    env.wait_agent("ana", "away").await;
    env.wait_agent("bo", "offered").await;
    let detail = env.call(&call, |c| c["state"] == "active").await;
    let holds = hold_switches(detail["events"].as_array().unwrap());
    assert_eq!(holds, [true], "never off hold: {holds:?}");
    assert!(!caller.recording().ended);
    caller.hangup().await.unwrap();
    env.shutdown().await;
}

