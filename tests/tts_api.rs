//! The TTS API end to end: a started server on loopback, espeak-ng for real audio (checked for
//! duration and, with the media crate's VAD, for speech), and the fake ElevenLabs / OpenAI
//! servers for network providers, their voice lists and their failures.

#[path = "fakes/mod.rs"]
mod fakes;
mod db;

use std::time::Duration;

use db::{Backend, TestDb};
use fakes::{elevenlabs, openai};
use futures_util::{SinkExt, StreamExt};
use media::codec::g711::ulaw_decode;
use media::codec::opus::OpusDecoder;
use media::vad::{WebRtcVad, WebRtcVadMode};
use media::{Decoder, SampleRate, StreamResampler, Timestamp, VadConfig, VoiceDetector};
use serde_json::{Value, json};
use switchboard::app::Server;
use switchboard::config::Config;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

struct Running {
    base: String,
    key: String,
    http: reqwest::Client,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _db: TestDb,
}

async fn start_with(edit: impl FnOnce(&mut Config)) -> Running {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut cfg = db.config();
    edit(&mut cfg);
    let server = Server::start(cfg).await.expect("server starts");
    let base = format!("http://{}", server.local_addr);
    let key = server.demo_key.clone().expect("embedded default creates a demo tenant");
    let stop = CancellationToken::new();
    let s = stop.clone();
    let task = tokio::spawn(server.run(async move { s.cancelled().await }));
    Running { base, key, http: reqwest::Client::new(), stop, task, _db: db }
}

impl Running {
    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}/api/v1{path}", self.base)).bearer_auth(&self.key)
    }

    fn synth(&self, body: Value) -> reqwest::RequestBuilder {
        self.http.post(format!("{}/api/v1/tts/synthesize", self.base)).bearer_auth(&self.key).json(&body)
    }

    async fn json(&self, path: &str) -> Value {
        let r = self.get(path).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        r.json().await.unwrap()
    }

    async fn shutdown(self) {
        self.stop.cancel();
        self.task.await.expect("server task").expect("clean exit");
    }
}

async fn error_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json::<Value>().await.expect("errors are JSON")["error"].clone())
}

fn pcm_le(bytes: &[u8]) -> Vec<i16> {
    assert_eq!(bytes.len() % 2, 0, "whole samples");
    bytes.chunks_exact(2).map(|p| i16::from_le_bytes([p[0], p[1]])).collect()
}

/// The share of 20 ms frames during which the VAD state machine (WebRTC engine, default
/// tuning) says someone is speaking, after resampling to 16 kHz.
fn speech_share(samples: &[i16], rate: SampleRate) -> f64 {
    let mut pcm = Vec::new();
    let mut rs = StreamResampler::new(rate, SampleRate::HZ_16000).unwrap();
    rs.process(samples, &mut pcm).unwrap();
    let engine = WebRtcVad::new(SampleRate::HZ_16000, WebRtcVadMode::Aggressive).unwrap();
    let mut vad = VoiceDetector::new(engine, VadConfig::default());
    let (mut speech, mut frames) = (0, 0);
    let mut at = Timestamp::zero(SampleRate::HZ_16000);
    for frame in pcm.chunks_exact(320) {
        vad.push(frame, at).unwrap();
        at = at.add_samples(320);
        frames += 1;
        if vad.is_speaking() {
            speech += 1;
        }
    }
    speech as f64 / frames.max(1) as f64
}

const PHRASE: &str = "Thank you for calling the front desk. How can I help you today?";

/// Real audio of PHRASE: between 2 and 6 s long and mostly speech.
fn assert_speech(samples: &[i16], rate: SampleRate, what: &str) {
    let secs = samples.len() as f64 / f64::from(rate.hz());
    assert!((2.0..6.0).contains(&secs), "{what}: {secs:.2} s");
    let share = speech_share(samples, rate);
    assert!(share > 0.5, "{what}: VAD speech share {share:.2}");
}

/// Packets of an Ogg stream (one packet per segment run), after checking each page's magic.
fn ogg_packets(b: &[u8]) -> Vec<Vec<u8>> {
    let (mut at, mut packets, mut current) = (0, Vec::new(), Vec::new());
    while at < b.len() {
        assert_eq!(&b[at..at + 4], b"OggS", "page at {at}");
        let n = b[at + 26] as usize;
        let lacing = &b[at + 27..at + 27 + n];
        let mut data = at + 27 + n;
        for &l in lacing {
            current.extend_from_slice(&b[data..data + l as usize]);
            data += l as usize;
            if l < 255 {
                packets.push(std::mem::take(&mut current));
            }
        }
        at = data;
    }
    packets
}

#[tokio::test]
async fn espeak_catalog_synthesis_and_previews() {
    let srv = start_with(|_| {}).await;

    // Providers: espeak-ng works offline; the network ones have no keys in the default.
    let body = srv.json("/tts/providers").await;
    let status = |id: &str| body["providers"].as_array().unwrap().iter().find(|p| p["id"] == id).unwrap().clone();
    assert_eq!(status("espeak")["status"], "usable");
    assert_eq!(status("espeak")["default"], true);
    assert_eq!(status("elevenlabs")["status"], "missing_key");
    assert_eq!(status("openai")["status"], "missing_key");

    // Voices from the engine, filtered by language.
    let body = srv.json("/tts/voices?provider=espeak&language=en").await;
    let voices = body["voices"].as_array().unwrap();
    assert!(voices.iter().any(|v| v["id"] == "en-us" && v["sample_rates"] == json!([22050])), "{body}");
    assert!(voices.iter().all(|v| v["languages"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().starts_with("en"))));
    assert_eq!(body["sources"][0]["stale"], false);
    let all = srv.json("/tts/voices?provider=espeak").await;
    assert!(all["voices"].as_array().unwrap().len() > voices.len(), "the filter removes other languages");

    // Tiers and prices from the embedded config.
    let body = srv.json("/tts/tiers").await;
    let tiers = body["tiers"].as_array().unwrap();
    let regular = tiers.iter().find(|t| t["name"] == "regular").unwrap();
    assert_eq!(regular["active_provider"], "espeak");
    assert_eq!(regular["default"], true);
    let premium = tiers.iter().find(|t| t["name"] == "premium").unwrap();
    assert_eq!(premium["active_provider"], Value::Null, "no ElevenLabs key configured");
    assert_eq!(premium["price_per_minute"], 0.3);

    // WAV, streamed chunked with an open-length header at espeak-ng's rate.
    let r = srv.synth(json!({"text": PHRASE, "voice": "en-us", "format": "wav"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "audio/wav");
    assert_eq!(r.headers().get("transfer-encoding").map(|v| v.to_str().unwrap()), Some("chunked"));
    assert!(r.headers().get("content-length").is_none());
    let wav = r.bytes().await.unwrap();
    assert_eq!(&wav[0..4], b"RIFF");
    assert_eq!(u32::from_le_bytes(wav[24..28].try_into().unwrap()), 22_050);
    assert_eq!(u32::from_le_bytes(wav[40..44].try_into().unwrap()), u32::MAX);
    let native = pcm_le(&wav[44..]);
    assert_speech(&native, SampleRate::HZ_22050, "wav");

    // pcm_16000: the same speech at 16 kHz, as long as the native audio.
    let r = srv.synth(json!({"text": PHRASE, "format": "pcm_16000"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let pcm = pcm_le(&r.bytes().await.unwrap());
    assert_speech(&pcm, SampleRate::HZ_16000, "pcm_16000");
    // Two separate syntheses; the unit tests check the exact resampled count.
    let expected = native.len() as f64 * 16_000.0 / 22_050.0;
    assert!((pcm.len() as f64 - expected).abs() <= expected * 0.02, "{} vs {expected}", pcm.len());

    // μ-law 8 kHz.
    let r = srv.synth(json!({"text": PHRASE, "format": "mulaw_8000"})).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "audio/basic");
    let mulaw: Vec<i16> = r.bytes().await.unwrap().iter().map(|&b| ulaw_decode(b)).collect();
    assert_speech(&mulaw, SampleRate::HZ_8000, "mulaw_8000");

    // Ogg Opus: headers, then packets that decode to the speech.
    let r = srv.synth(json!({"text": PHRASE, "format": "opus"})).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "audio/ogg; codecs=opus");
    let packets = ogg_packets(&r.bytes().await.unwrap());
    assert!(packets[0].starts_with(b"OpusHead") && packets[1].starts_with(b"OpusTags"));
    let mut dec = OpusDecoder::new(SampleRate::HZ_16000).unwrap();
    let mut decoded = Vec::new();
    for p in &packets[2..] {
        dec.decode(p, &mut decoded).unwrap();
    }
    assert_speech(&decoded, SampleRate::HZ_16000, "opus");

    // Previews: synthesized once, then served from cache, byte for byte.
    let r = srv.get("/tts/voices/en-us/preview?provider=espeak").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-cache"], "miss");
    let first = r.bytes().await.unwrap();
    let data_len = u32::from_le_bytes(first[40..44].try_into().unwrap()) as usize;
    assert_eq!(data_len, first.len() - 44, "a buffered preview carries its real length");
    let r = srv.get("/tts/voices/en-us/preview?provider=espeak").send().await.unwrap();
    assert_eq!(r.headers()["x-cache"], "hit");
    assert_eq!(r.bytes().await.unwrap(), first);
    let preview = pcm_le(&first[44..]);
    assert!(speech_share(&preview, SampleRate::HZ_22050) > 0.5);

    // Limits and errors.
    let long = "word ".repeat(1001);
    let (status, err) = error_of(srv.synth(json!({"text": long})).send().await.unwrap()).await;
    assert_eq!((status, err["code"].as_str().unwrap()), (413, "text_too_long"), "{err}");
    let (status, err) = error_of(srv.synth(json!({"text": "   "})).send().await.unwrap()).await;
    assert_eq!((status, err["code"].as_str().unwrap()), (422, "validation_failed"));
    let (status, err) = error_of(srv.synth(json!({"text": "hi", "voice": "no-such-voice-xyz"})).send().await.unwrap()).await;
    assert_eq!((status, err["code"].as_str().unwrap()), (422, "espeak_not_configured"), "{err}");
    assert!(err["message"].as_str().unwrap().contains("no-such-voice-xyz"));
    let (status, err) = error_of(srv.synth(json!({"text": "hi", "provider": "elevenlabs"})).send().await.unwrap()).await;
    assert_eq!((status, err["code"].as_str().unwrap()), (422, "elevenlabs_not_configured"), "{err}");
    let (status, err) = error_of(srv.synth(json!({"text": "hi", "format": "mp3"})).send().await.unwrap()).await;
    assert_eq!((status, err["code"].as_str().unwrap()), (400, "bad_request"), "{err}");
    let r = srv.http.post(format!("{}/api/v1/tts/synthesize", srv.base)).json(&json!({"text": "hi"})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    srv.shutdown().await;
}

fn with_elevenlabs(fake: &elevenlabs::FakeElevenLabs, key: &str) -> impl FnOnce(&mut Config) {
    let base = fake.base_url();
    let key = key.to_owned();
    move |cfg: &mut Config| {
        cfg.speech.elevenlabs.base_url = base;
        cfg.speech.elevenlabs.api_key = Some(key);
        cfg.tts_api.voice_cache_ttl = Duration::from_millis(300);
    }
}

#[tokio::test]
async fn elevenlabs_voices_synthesis_and_errors() {
    let fake = elevenlabs::FakeElevenLabs::start(elevenlabs::Options::default()).await;
    let srv = start_with(with_elevenlabs(&fake, "el-test-key")).await;

    let body = srv.json("/tts/providers").await;
    let el = body["providers"].as_array().unwrap().iter().find(|p| p["id"] == "elevenlabs").unwrap().clone();
    assert_eq!(el["status"], "usable", "{el}");

    let body = srv.json("/tts/voices?provider=elevenlabs&language=en").await;
    let voices = body["voices"].as_array().unwrap();
    assert_eq!(voices.len(), 2, "Greta speaks German: {body}");
    assert_eq!(voices[0]["id"], elevenlabs::VOICES[0].0);
    assert_eq!(voices[0]["gender"], "female");
    assert_eq!(voices[0]["language"], "en-US");
    assert_eq!(voices[1]["gender"], "male");

    let body = srv.json("/tts/tiers").await;
    let premium = body["tiers"].as_array().unwrap().iter().find(|t| t["name"] == "premium").unwrap().clone();
    assert_eq!(premium["active_provider"], "elevenlabs");

    // pcm_16000 is the provider's own format: bytes pass through untouched.
    let text = "Hello from the premium tier.";
    let r = srv.synth(json!({"text": text, "tier": "premium", "voice": "pNInz6obpgDQGcFmaJgB", "format": "pcm_16000"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), elevenlabs::audio_for(text));
    let conn = fake.connections().last().unwrap().clone();
    assert_eq!(conn.voice_id, "pNInz6obpgDQGcFmaJgB");
    assert!(conn.query.contains("output_format=pcm_16000"), "{}", conn.query);

    // μ-law is asked of the provider and passed through as well.
    let r = srv.synth(json!({"text": text, "provider": "elevenlabs", "format": "mulaw_8000"})).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().to_vec(), elevenlabs::audio_for(text));
    assert!(fake.connections().last().unwrap().query.contains("output_format=ulaw_8000"));
    srv.shutdown().await;

    // A key the provider refuses: 502 with a code naming the provider.
    let srv = start_with(with_elevenlabs(&fake, "wrong-key")).await;
    let (status, err) = error_of(srv.synth(json!({"text": text, "provider": "elevenlabs"})).send().await.unwrap()).await;
    assert_eq!((status, err["code"].as_str().unwrap()), (502, "elevenlabs_unauthorized"), "{err}");
    assert_eq!(err["provider"], "elevenlabs");
    let (status, err) = error_of(srv.get("/tts/voices?provider=elevenlabs").send().await.unwrap()).await;
    assert_eq!((status, err["code"].as_str().unwrap()), (502, "elevenlabs_unauthorized"), "{err}");
    srv.shutdown().await;
}

#[tokio::test]
async fn voice_list_is_cached_and_served_stale_while_the_provider_is_down() {
    let fake = elevenlabs::FakeElevenLabs::start(elevenlabs::Options::default()).await;
    let srv = start_with(with_elevenlabs(&fake, "el-test-key")).await;
    let path = "/tts/voices?provider=elevenlabs";

    let fresh = srv.json(path).await;
    assert_eq!(fresh["sources"][0]["stale"], false);
    assert_eq!(fake.voice_list_requests(), 1);
    let again = srv.json(path).await;
    assert_eq!(fake.voice_list_requests(), 1, "served from cache within the TTL");
    assert_eq!(again["voices"], fresh["voices"]);

    fake.set_voices_down(true);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stale = srv.json(path).await;
    assert_eq!(fake.voice_list_requests(), 2, "the expired list was refreshed");
    assert_eq!(stale["sources"][0]["stale"], true, "{stale}");
    assert_eq!(stale["voices"], fresh["voices"]);

    fake.set_voices_down(false);
    let back = srv.json(path).await;
    assert_eq!(back["sources"][0]["stale"], false);
    assert_eq!(fake.voice_list_requests(), 3);
    srv.shutdown().await;

    // Unreachable with nothing cached: a readable 502, and the provider shows as down.
    let dead = fakes::dead_addr().await;
    let srv = start_with(|cfg| {
        cfg.speech.elevenlabs.base_url = format!("ws://{dead}");
        cfg.speech.elevenlabs.api_key = Some("el-test-key".into());
    })
    .await;
    let (status, err) = error_of(srv.get(path).send().await.unwrap()).await;
    assert_eq!((status, err["code"].as_str().unwrap()), (502, "elevenlabs_unreachable"), "{err}");
    let body = srv.json("/tts/providers").await;
    let el = body["providers"].as_array().unwrap().iter().find(|p| p["id"] == "elevenlabs").unwrap().clone();
    assert_eq!(el["status"], "down", "{el}");
    // The catalog without a provider filter still answers, reporting the failure per source.
    let all = srv.json("/tts/voices").await;
    let src = all["sources"].as_array().unwrap().iter().find(|s| s["provider"] == "elevenlabs").unwrap().clone();
    assert!(src["error"].as_str().is_some(), "{all}");
    srv.shutdown().await;
}

fn with_openai(fake: &openai::FakeOpenAi, key: &str, per_key: usize) -> impl FnOnce(&mut Config) {
    let base = fake.base_url();
    let key = key.to_owned();
    move |cfg: &mut Config| {
        cfg.speech.openai_tts.base_url = base;
        cfg.speech.openai_tts.api_key = Some(key);
        cfg.tts_api.max_concurrent_per_key = per_key;
    }
}

#[tokio::test]
async fn openai_voices_synthesis_and_concurrency_limit() {
    let fake = openai::FakeOpenAi::start(openai::Options::default()).await;
    let srv = start_with(with_openai(&fake, "oa-test-key", 1)).await;

    let body = srv.json("/tts/voices?provider=openai").await;
    let ids: Vec<&str> = body["voices"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(ids, openai::VOICES);

    // WAV at the provider's 24 kHz: exactly the fake's samples.
    let text = "Regular tier speech.";
    let r = srv.synth(json!({"text": text, "provider": "openai", "voice": "af_bella", "format": "wav"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let wav = r.bytes().await.unwrap();
    assert_eq!(u32::from_le_bytes(wav[24..28].try_into().unwrap()), 24_000);
    assert_eq!(pcm_le(&wav[44..]), openai::speech_for(text));
    assert_eq!(fake.speech_requests().last().unwrap()["voice"], "af_bella");

    // pcm_16000: resampled, two samples out for every three in.
    let r = srv.synth(json!({"text": text, "provider": "openai", "format": "pcm_16000"})).send().await.unwrap();
    let n = pcm_le(&r.bytes().await.unwrap()).len();
    assert_eq!(n, openai::speech_for(text).len() * 2 / 3);

    // One synthesis at a time for this key: a second one is refused while the first streams.
    let release = fake.hold_after_first_chunk();
    let first = srv.synth(json!({"text": text, "provider": "openai", "format": "pcm_16000"})).send().await.unwrap();
    assert_eq!(first.status(), 200, "headers arrive with the first audio");
    let (status, err) = error_of(srv.synth(json!({"text": "x", "provider": "openai"})).send().await.unwrap()).await;
    assert_eq!((status, err["code"].as_str().unwrap()), (429, "too_many_requests"), "{err}");
    release.notify_one();
    let streamed = first.bytes().await.unwrap();
    assert_eq!(streamed.len() / 2, openai::speech_for(text).len() * 2 / 3);
    // (The fake holds every later body after its first chunk: WAV passes that chunk straight on.)
    let r = srv.synth(json!({"text": "x", "provider": "openai", "format": "wav"})).send().await.unwrap();
    assert_eq!(r.status(), 200, "the slot is free again once the first response ended");
    drop(r);
    srv.shutdown().await;

    // The provider refuses our key.
    let srv = start_with(with_openai(&fake, "wrong", 4)).await;
    let (status, err) = error_of(srv.synth(json!({"text": text, "provider": "openai"})).send().await.unwrap()).await;
    assert_eq!((status, err["code"].as_str().unwrap()), (502, "openai_unauthorized"), "{err}");
    srv.shutdown().await;
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_next(ws: &mut Ws) -> Message {
    tokio::time::timeout(Duration::from_secs(20), ws.next()).await.expect("message within 20 s").expect("open").expect("ok")
}

async fn ws_event(ws: &mut Ws) -> Value {
    loop {
        match ws_next(ws).await {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Binary(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

#[tokio::test]
async fn websocket_streams_and_cancels_mid_utterance() {
    let srv = start_with(|cfg| cfg.speech.espeak.rate_wpm = 120).await;
    let url = format!("{}/ws/tts?api_key={}&voice=en-us&format=pcm_16000&lead_ms=100", srv.base.replace("http", "ws"), srv.key);

    // No key, no socket.
    let unauth = tokio_tungstenite::connect_async(format!("{}/ws/tts", srv.base.replace("http", "ws"))).await;
    match unauth {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }

    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("socket opens");
    let long = "This is a long announcement that keeps going for quite a while, listing every department, \
                every opening hour and every holiday of the year, so that a caller has plenty of time to interrupt it";
    send(&mut ws, json!({"type": "text", "text": long})).await;
    send(&mut ws, json!({"type": "flush"})).await;
    let started = ws_event(&mut ws).await;
    assert_eq!(started["type"], "started", "{started}");
    assert_eq!(started["sample_rate"], 16_000);
    let utterance = started["utterance"].clone();
    // The first chunk: its announcement, then its audio.
    let chunk = ws_event(&mut ws).await;
    assert_eq!(chunk["type"], "chunk", "{chunk}");
    match ws_next(&mut ws).await {
        Message::Binary(b) => assert_eq!(b.len(), chunk["bytes"].as_u64().unwrap() as usize),
        other => panic!("expected audio, got {other:?}"),
    }
    // Let the utterance run a while, then cancel it mid-stream.
    let mut heard_ms = chunk["duration_ms"].as_u64().unwrap();
    while heard_ms < 600 {
        let ev = ws_event(&mut ws).await;
        assert_eq!(ev["type"], "chunk", "{ev}");
        heard_ms += ev["duration_ms"].as_u64().unwrap();
    }
    send(&mut ws, json!({"type": "cancel"})).await;
    let mut late_ms = 0;
    loop {
        match ws_next(&mut ws).await {
            Message::Binary(_) => {}
            Message::Text(t) => {
                let ev: Value = serde_json::from_str(t.as_str()).unwrap();
                if ev["type"] == "cancelled" {
                    assert_eq!(ev["utterance"], utterance);
                    break;
                }
                assert_eq!(ev["type"], "chunk", "{ev}");
                late_ms += ev["duration_ms"].as_u64().unwrap();
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // What was already on its way: at most the pacing lead (100 ms here) and one chunk.
    assert!(late_ms <= 100 + 40, "{late_ms} ms of audio after cancel");
    // Nothing more of the cancelled utterance arrives.
    let quiet = tokio::time::timeout(Duration::from_millis(300), ws.next()).await;
    assert!(quiet.is_err(), "socket stays quiet after cancel: {quiet:?}");

    // The socket takes the next utterance and finishes it.
    send(&mut ws, json!({"type": "text", "text": PHRASE})).await;
    send(&mut ws, json!({"type": "finish"})).await;
    let started = ws_event(&mut ws).await;
    assert_eq!(started["type"], "started");
    assert_ne!(started["utterance"], utterance);
    let mut audio = Vec::new();
    let done = loop {
        match ws_next(&mut ws).await {
            Message::Binary(b) => audio.extend_from_slice(&b),
            Message::Text(t) => {
                let ev: Value = serde_json::from_str(t.as_str()).unwrap();
                match ev["type"].as_str().unwrap() {
                    "chunk" => {}
                    "done" => break ev,
                    _ => panic!("unexpected {ev}"),
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    let pcm = pcm_le(&audio);
    assert_speech(&pcm, SampleRate::HZ_16000, "ws");
    assert_eq!(done["duration_ms"].as_u64().unwrap(), pcm.len() as u64 * 1000 / 16_000);

    // A malformed message is reported, and the socket stays usable.
    send(&mut ws, json!({"type": "shout"})).await;
    let err = ws_event(&mut ws).await;
    assert_eq!((err["type"].as_str(), err["code"].as_str()), (Some("error"), Some("bad_message")));
    ws.close(None).await.unwrap();
    srv.shutdown().await;
}
