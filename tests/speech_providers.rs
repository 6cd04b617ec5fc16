//! Network speech providers against local fakes on 127.0.0.1: happy paths and faults.

#[path = "fakes/mod.rs"]
mod fakes;

use std::sync::Arc;
use std::time::Duration;

use fakes::{deepgram, elevenlabs, openai};
use media::SampleRate;
use serde_json::json;
use switchboard::speech::SpeechError;
use switchboard::speech::stt::deepgram::{DeepgramConfig, DeepgramStt};
use switchboard::speech::stt::openai::{OpenAiStt, OpenAiSttConfig};
use switchboard::speech::stt::{SttAudioFormat, SttContext, SttEvent, SttInput, SttProvider, SttStream};
use switchboard::speech::tts::elevenlabs::{ElevenLabsConfig, ElevenLabsTts};
use switchboard::speech::tts::fallback::FallbackTts;
use switchboard::speech::tts::openai::{OpenAiTts, OpenAiTtsConfig};
use switchboard::speech::tts::{TtsContext, TtsEvent, TtsInput, TtsOutputFormat, TtsProvider};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(5);

async fn next<T>(rx: &mut mpsc::Receiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv()).await.expect("event within 5 s").expect("channel open")
}

/// Events until (and including) the first one matching `last`.
async fn until<T: std::fmt::Debug>(rx: &mut mpsc::Receiver<T>, last: impl Fn(&T) -> bool) -> Vec<T> {
    let mut out = Vec::new();
    loop {
        let ev = next(rx).await;
        let stop = last(&ev);
        out.push(ev);
        if stop {
            return out;
        }
    }
}

/// Stream times are sums of 20 ms steps: compare them at millisecond precision.
fn ms(ev: SttEvent) -> SttEvent {
    let r = |x: f64| (x * 1000.0).round() / 1000.0;
    match ev {
        SttEvent::Final { text, start, end, confidence } => SttEvent::Final { text, start: r(start), end: r(end), confidence },
        SttEvent::SpeechStarted { at } => SttEvent::SpeechStarted { at: r(at) },
        SttEvent::SpeechEnded { at } => SttEvent::SpeechEnded { at: r(at) },
        other => other,
    }
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

// ---------------------------------------------------------------------------------------------
// Deepgram

fn dg(fake: &deepgram::FakeDeepgram) -> DeepgramConfig {
    DeepgramConfig { base_url: fake.base_url(), api_key: Some("dg-test-key".into()), ..Default::default() }
}

fn phone_ctx() -> SttContext {
    SttContext { call_id: "c1".into(), native_format: Some(SttAudioFormat::Mulaw8k), ..Default::default() }
}

/// 20 ms μ-law chunks: `n` chunks of word code `code` (0xFF is silence).
async fn say(s: &SttStream, code: u8, n: usize, at: &mut u64) {
    for _ in 0..n {
        s.input.send(SttInput::Mulaw8k { at_samples: *at, bytes: vec![code; 160] }).await.expect("stream open");
        *at += 160;
    }
}

#[tokio::test]
async fn deepgram_assembles_interim_final_and_utterance_end() {
    let fake = deepgram::FakeDeepgram::start(deepgram::Options {
        final_every_words: 1,
        speech_final_on_endpoint: false,
        ..Default::default()
    })
    .await;
    let mut s = DeepgramStt::new(dg(&fake)).open(phone_ctx()).await.expect("open");
    assert_eq!(s.format, SttAudioFormat::Mulaw8k);
    let mut at = 0;
    say(&s, 5, 3, &mut at).await; // hello
    say(&s, 6, 3, &mut at).await; // world
    say(&s, 0xFF, 6, &mut at).await;
    let events = until(&mut s.events, |e| matches!(e, SttEvent::SpeechEnded { .. })).await;
    assert_eq!(
        events.into_iter().map(ms).collect::<Vec<_>>(),
        vec![
            SttEvent::SpeechStarted { at: 0.0 },
            SttEvent::Partial { text: "hello".into() },
            SttEvent::Partial { text: "hello".into() },
            SttEvent::Partial { text: "hello world".into() },
            SttEvent::Partial { text: "hello world".into() },
            SttEvent::Final { text: "hello world".into(), start: 0.0, end: 0.12, confidence: 0.9 },
            SttEvent::SpeechEnded { at: 0.12 },
        ]
    );
    let conn = &fake.connections()[0];
    assert_eq!(conn.authorization.as_deref(), Some("Token dg-test-key"));
    for p in ["encoding=mulaw", "sample_rate=8000", "interim_results=true", "vad_events=true", "utterance_end_ms=1000", "endpointing=300"] {
        assert!(conn.has_param(p), "missing {p} in {}", conn.query);
    }
    assert!(conn.binaries().iter().all(|b| b.len() == 160), "μ-law passes through unchanged");
}

#[tokio::test]
async fn deepgram_finalize_and_close_stream_are_text_frames() {
    let fake = deepgram::FakeDeepgram::start(deepgram::Options::default()).await;
    let ctx = SttContext { call_id: "c2".into(), ..Default::default() };
    let mut s = DeepgramStt::new(dg(&fake)).open(ctx).await.expect("open");
    assert_eq!(s.format, SttAudioFormat::Linear16k);
    for i in 0..3u64 {
        // Low byte 5 is the fake's code for "hello".
        s.input.send(SttInput::Linear16k { at_samples: i * 320, samples: vec![5; 320] }).await.unwrap();
    }
    s.input.send(SttInput::Finalize).await.unwrap();
    let events = until(&mut s.events, |e| matches!(e, SttEvent::Final { .. })).await;
    assert_eq!(
        events.last().cloned().map(ms),
        Some(SttEvent::Final { text: "hello".into(), start: 0.0, end: 0.06, confidence: 0.9 })
    );
    s.input.send(SttInput::Close).await.unwrap();
    until(&mut s.events, |e| *e == SttEvent::Closed).await;
    let conn = &fake.connections()[0];
    assert!(conn.has_param("encoding=linear16") && conn.has_param("sample_rate=16000"), "{}", conn.query);
    assert_eq!(conn.texts(), vec![r#"{"type":"Finalize"}"#, r#"{"type":"CloseStream"}"#]);
    assert_eq!(conn.binaries().len(), 3);
    assert_eq!(conn.binaries()[0].len(), 640, "linear16 is 2 bytes per sample");
}

#[tokio::test]
async fn deepgram_sends_keepalive_during_silence() {
    let fake = deepgram::FakeDeepgram::start(deepgram::Options::default()).await;
    let cfg = DeepgramConfig { keepalive_interval: Duration::from_millis(100), ..dg(&fake) };
    let _s = DeepgramStt::new(cfg).open(phone_ctx()).await.expect("open");
    tokio::time::sleep(Duration::from_millis(370)).await;
    let conn = &fake.connections()[0];
    let texts = conn.texts();
    assert!(texts.len() >= 2, "expected keep-alives, got {texts:?}");
    assert!(texts.iter().all(|t| t == r#"{"type":"KeepAlive"}"#), "{texts:?}");
    assert!(conn.binaries().is_empty());
}

#[tokio::test]
async fn deepgram_reconnects_and_replays_the_current_utterance() {
    let fake = deepgram::FakeDeepgram::start(deepgram::Options {
        drop_first_after_bytes: Some(14 * 160),
        ..Default::default()
    })
    .await;
    let mut s = DeepgramStt::new(dg(&fake)).open(phone_ctx()).await.expect("open");
    let mut at = 0;
    for code in [1, 2, 3, 4] {
        say(&s, code, 5, &mut at).await;
    }
    say(&s, 0xFF, 8, &mut at).await;
    let events = until(&mut s.events, |e| matches!(e, SttEvent::Final { .. })).await;
    let Some(SttEvent::Final { text, start, end, .. }) = events.last() else { unreachable!() };
    assert_eq!(text, "one two three four", "no caller words lost: {events:?}");
    assert!(*start < 0.01 && (*end - 0.4).abs() < 0.03, "stream times survive the reconnect: {start}..{end}");
    let conns = fake.connections();
    assert_eq!(conns.len(), 2, "one reconnect");
    // The second socket starts with the buffered audio: at least everything from "three" on,
    // which the first socket never finalized.
    let replayed: Vec<u8> = conns[1].binaries().iter().map(|b| b[0]).collect();
    let from_three = replayed.iter().position(|&c| c == 3).expect("'three' replayed");
    assert!(replayed[..from_three].iter().all(|&c| c == 1 || c == 2), "{replayed:?}");
    assert_eq!(replayed[from_three..from_three + 10], [3, 3, 3, 3, 3, 4, 4, 4, 4, 4]);
}

#[tokio::test]
async fn deepgram_silence_from_the_server_times_out_and_the_stream_ends_cleanly() {
    let fake = deepgram::FakeDeepgram::start(deepgram::Options { silent: true, ..Default::default() }).await;
    let cfg = DeepgramConfig { first_result_timeout: Duration::from_millis(200), ..dg(&fake) };
    let mut s = DeepgramStt::new(cfg).open(phone_ctx()).await.expect("open");
    let mut at = 0;
    say(&s, 1, 3, &mut at).await;
    let ev = next(&mut s.events).await;
    assert_eq!(ev, SttEvent::Error(SpeechError::Timeout { provider: "deepgram", what: "first result" }));
    // Still usable: more audio reaches the server.
    say(&s, 2, 2, &mut at).await;
    eventually("audio after the timeout", || fake.connections()[0].binaries().len() == 5).await;
    s.input.send(SttInput::Close).await.unwrap();
    let ev = next(&mut s.events).await;
    assert_eq!(ev, SttEvent::Error(SpeechError::Timeout { provider: "deepgram", what: "end of stream" }));
    assert_eq!(next(&mut s.events).await, SttEvent::Closed);
}

#[tokio::test]
async fn deepgram_garbage_is_a_protocol_error_not_a_panic() {
    let fake = deepgram::FakeDeepgram::start(deepgram::Options { garbage: true, ..Default::default() }).await;
    let mut s = DeepgramStt::new(dg(&fake)).open(phone_ctx()).await.expect("open");
    let mut at = 0;
    say(&s, 1, 1, &mut at).await;
    match next(&mut s.events).await {
        SttEvent::Error(SpeechError::Protocol { provider: "deepgram", reason }) => {
            assert!(reason.contains("unreadable") && reason.contains("502 Bad Gateway"), "{reason}")
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
    s.input.send(SttInput::Close).await.unwrap();
    until(&mut s.events, |e| *e == SttEvent::Closed).await;
}

#[tokio::test]
async fn deepgram_refusals_are_readable_errors() {
    for (status, want) in [
        (401, SpeechError::Unauthorized { provider: "deepgram", status: 401 }),
        (403, SpeechError::Unauthorized { provider: "deepgram", status: 403 }),
        (429, SpeechError::RateLimited { provider: "deepgram" }),
    ] {
        let fake = deepgram::FakeDeepgram::start(deepgram::Options { reject_status: Some(status), ..Default::default() }).await;
        let p = DeepgramStt::new(dg(&fake));
        assert_eq!(p.open(phone_ctx()).await.unwrap_err(), want);
        assert_eq!(p.check().await.unwrap_err(), want);
    }
    assert_eq!(SpeechError::RateLimited { provider: "deepgram" }.to_string(), "deepgram: rate limited");
    let fake = deepgram::FakeDeepgram::start(deepgram::Options::default()).await;
    let wrong_key = DeepgramConfig { api_key: Some("nope".into()), ..dg(&fake) };
    assert!(matches!(DeepgramStt::new(wrong_key).check().await, Err(SpeechError::Unauthorized { status: 401, .. })));
    let no_key = DeepgramConfig { api_key: None, ..dg(&fake) };
    assert!(matches!(DeepgramStt::new(no_key).check().await, Err(SpeechError::NotConfigured { .. })));
    assert!(DeepgramStt::new(dg(&fake)).check().await.is_ok());
    let dead = DeepgramConfig { base_url: format!("ws://{}", fakes::dead_addr().await), ..dg(&fake) };
    assert!(matches!(DeepgramStt::new(dead).check().await, Err(SpeechError::Connect { .. })));
}

// ---------------------------------------------------------------------------------------------
// ElevenLabs

fn el(fake: &elevenlabs::FakeElevenLabs) -> ElevenLabsConfig {
    ElevenLabsConfig { base_url: fake.base_url(), api_key: Some("el-test-key".into()), ..Default::default() }
}

fn tts_ctx(preferred: TtsOutputFormat) -> TtsContext {
    TtsContext { call_id: "c3".into(), preferred: Some(preferred), ..Default::default() }
}

async fn speak(input: &mpsc::Sender<TtsInput>) {
    for i in [TtsInput::Text("Hi there".into()), TtsInput::Flush, TtsInput::Text("Bye".into()), TtsInput::Finish] {
        // A failing stream may end before it took all input; the events tell the story.
        let _ = input.send(i).await;
    }
}

#[tokio::test]
async fn elevenlabs_speaks_ulaw_with_space_first_flush_and_eos() {
    let fake = elevenlabs::FakeElevenLabs::start(elevenlabs::Options::default()).await;
    let mut s = ElevenLabsTts::new(el(&fake)).open(tts_ctx(TtsOutputFormat::Mulaw8k)).await.expect("open");
    speak(&s.input).await;
    let events = until(&mut s.events, |e| *e == TtsEvent::Done).await;
    let audio: Vec<u8> = events
        .iter()
        .flat_map(|e| match e {
            TtsEvent::Mulaw8k { bytes } => bytes.clone(),
            TtsEvent::Done => Vec::new(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(audio, [elevenlabs::audio_for("Hi there"), elevenlabs::audio_for("Bye")].concat());
    let conn = &fake.connections()[0];
    assert_eq!(conn.voice_id, "21m00Tcm4TlvDq8ikWAM");
    assert!(conn.query.contains("output_format=ulaw_8000"), "{}", conn.query);
    assert_eq!(conn.messages[0]["text"], " ", "first message is a single space");
    assert!(conn.messages[0]["voice_settings"]["stability"].is_number());
    assert_eq!(
        conn.messages[1..],
        [
            json!({"text": "Hi there ", "try_trigger_generation": true}),
            json!({"text": " ", "flush": true}),
            json!({"text": "Bye ", "try_trigger_generation": true}),
            json!({"text": ""}),
        ]
    );
}

#[tokio::test]
async fn elevenlabs_pcm16k_and_cancel_closes_the_socket() {
    let fake = elevenlabs::FakeElevenLabs::start(elevenlabs::Options::default()).await;
    let ctx = TtsContext { voice: Some("voice-9".into()), ..tts_ctx(TtsOutputFormat::Pcm16k) };
    let mut s = ElevenLabsTts::new(el(&fake)).open(ctx).await.expect("open");
    s.input.send(TtsInput::Text("Hey".into())).await.unwrap();
    s.input.send(TtsInput::Flush).await.unwrap();
    let mut samples = Vec::new();
    while samples.len() < 6 {
        match next(&mut s.events).await {
            TtsEvent::Pcm { samples: got, rate } => {
                assert_eq!(rate, SampleRate::HZ_16000);
                samples.extend(got);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let want: Vec<i16> = elevenlabs::audio_for("Hey").chunks(2).map(|p| i16::from_le_bytes([p[0], p[1]])).collect();
    assert_eq!(samples, want);
    s.input.send(TtsInput::Cancel).await.unwrap();
    eventually("socket closed by the client", || fake.connections()[0].client_closed).await;
    let conn = &fake.connections()[0];
    assert_eq!(conn.voice_id, "voice-9");
    assert!(conn.query.contains("output_format=pcm_16000"));
    assert!(tokio::time::timeout(WAIT, s.events.recv()).await.expect("stream ends").is_none(), "no Done after cancel");
}

#[tokio::test]
async fn elevenlabs_error_payload_and_garbage_are_readable_errors() {
    let fake = elevenlabs::FakeElevenLabs::start(elevenlabs::Options { mode: elevenlabs::Mode::ErrorMessage, ..Default::default() }).await;
    let mut s = ElevenLabsTts::new(el(&fake)).open(tts_ctx(TtsOutputFormat::Mulaw8k)).await.expect("open");
    speak(&s.input).await;
    match next(&mut s.events).await {
        TtsEvent::Error(SpeechError::Protocol { reason, .. }) => assert!(reason.contains("Quota exceeded"), "{reason}"),
        other => panic!("expected an error, got {other:?}"),
    }
    let fake = elevenlabs::FakeElevenLabs::start(elevenlabs::Options { mode: elevenlabs::Mode::Garbage, ..Default::default() }).await;
    let mut s = ElevenLabsTts::new(el(&fake)).open(tts_ctx(TtsOutputFormat::Mulaw8k)).await.expect("open");
    speak(&s.input).await;
    match next(&mut s.events).await {
        TtsEvent::Error(SpeechError::Protocol { reason, .. }) => assert!(reason.contains("unreadable"), "{reason}"),
        other => panic!("expected an error, got {other:?}"),
    }
    let fake = elevenlabs::FakeElevenLabs::start(elevenlabs::Options { mode: elevenlabs::Mode::Silent, ..Default::default() }).await;
    let cfg = ElevenLabsConfig { first_audio_timeout: Duration::from_millis(200), ..el(&fake) };
    let mut s = ElevenLabsTts::new(cfg).open(tts_ctx(TtsOutputFormat::Mulaw8k)).await.expect("open");
    speak(&s.input).await;
    assert_eq!(next(&mut s.events).await, TtsEvent::Error(SpeechError::Timeout { provider: "elevenlabs", what: "audio" }));
}

#[tokio::test]
async fn elevenlabs_refusals_are_readable_errors() {
    for (status, want) in [
        (401, SpeechError::Unauthorized { provider: "elevenlabs", status: 401 }),
        (429, SpeechError::RateLimited { provider: "elevenlabs" }),
    ] {
        let fake = elevenlabs::FakeElevenLabs::start(elevenlabs::Options { reject_status: Some(status), ..Default::default() }).await;
        let p = ElevenLabsTts::new(el(&fake));
        assert_eq!(p.open(tts_ctx(TtsOutputFormat::Mulaw8k)).await.unwrap_err(), want);
        assert_eq!(p.check().await.unwrap_err(), want);
    }
    let fake = elevenlabs::FakeElevenLabs::start(elevenlabs::Options::default()).await;
    assert!(ElevenLabsTts::new(el(&fake)).check().await.is_ok());
    let no_key = ElevenLabsConfig { api_key: None, ..el(&fake) };
    assert!(matches!(ElevenLabsTts::new(no_key).check().await, Err(SpeechError::NotConfigured { .. })));
}

// ---------------------------------------------------------------------------------------------
// OpenAI-compatible TTS

fn oa_tts(fake: &openai::FakeOpenAi) -> OpenAiTtsConfig {
    OpenAiTtsConfig { base_url: fake.base_url(), api_key: Some("oa-test-key".into()), ..Default::default() }
}

#[tokio::test]
async fn openai_speech_streams_pcm_before_the_body_ends() {
    let fake = openai::FakeOpenAi::start(openai::Options::default()).await;
    let release = fake.hold_after_first_chunk();
    let mut s = OpenAiTts::new(oa_tts(&fake)).unwrap().open(tts_ctx(TtsOutputFormat::Mulaw8k)).await.expect("open");
    s.input.send(TtsInput::Text("Hello there".into())).await.unwrap();
    s.input.send(TtsInput::Finish).await.unwrap();
    // The server holds the rest of the body: this audio came from the first chunk alone.
    let TtsEvent::Pcm { samples: first, rate } = next(&mut s.events).await else { panic!("expected pcm") };
    assert_eq!(rate, SampleRate::HZ_24000);
    assert!(!first.is_empty() && first.len() <= openai::FIRST_CHUNK / 2, "{} samples from the first chunk", first.len());
    release.notify_one();
    let mut samples = first;
    let mut chunks = 1;
    loop {
        match next(&mut s.events).await {
            TtsEvent::Pcm { samples: more, .. } => {
                samples.extend(more);
                chunks += 1;
            }
            TtsEvent::Done => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(chunks > 3, "several body chunks, got {chunks}");
    assert_eq!(samples, openai::speech_for("Hello there"));
    let req = &fake.speech_requests()[0];
    assert_eq!(req["input"], "Hello there");
    assert_eq!(req["response_format"], "pcm");
    assert_eq!(req["voice"], "alloy");
    assert_eq!(req["model"], "gpt-4o-mini-tts");
}

#[tokio::test]
async fn openai_speech_errors_are_readable() {
    for (mode, check) in [
        (openai::Mode::Status(401), (|e: &SpeechError| *e == SpeechError::Unauthorized { provider: "openai-tts", status: 401 }) as fn(&SpeechError) -> bool),
        (openai::Mode::Status(429), |e| *e == SpeechError::RateLimited { provider: "openai-tts" }),
        (openai::Mode::Status(500), |e| matches!(e, SpeechError::Protocol { reason, .. } if reason == "HTTP 500: rejected by the fake")),
        (openai::Mode::Garbage, |e| matches!(e, SpeechError::Protocol { reason, .. } if reason.contains("expected raw pcm audio, got text/html"))),
    ] {
        let fake = openai::FakeOpenAi::start(openai::Options { speech: mode, ..Default::default() }).await;
        let mut s = OpenAiTts::new(oa_tts(&fake)).unwrap().open(tts_ctx(TtsOutputFormat::Pcm16k)).await.expect("open");
        speak(&s.input).await;
        match next(&mut s.events).await {
            TtsEvent::Error(e) => assert!(check(&e), "{mode:?}: {e}"),
            other => panic!("{mode:?}: expected an error, got {other:?}"),
        }
    }
    let fake = openai::FakeOpenAi::start(openai::Options::default()).await;
    assert!(OpenAiTts::new(oa_tts(&fake)).unwrap().check().await.is_ok());
    let wrong = OpenAiTtsConfig { api_key: Some("nope".into()), ..oa_tts(&fake) };
    assert!(matches!(OpenAiTts::new(wrong).unwrap().check().await, Err(SpeechError::Unauthorized { status: 401, .. })));
    let official = OpenAiTtsConfig { api_key: None, ..Default::default() };
    assert!(matches!(OpenAiTts::new(official).unwrap().check().await, Err(SpeechError::NotConfigured { .. })));
    let dead = OpenAiTtsConfig { base_url: format!("http://{}", fakes::dead_addr().await), ..oa_tts(&fake) };
    assert!(matches!(OpenAiTts::new(dead).unwrap().check().await, Err(SpeechError::Connect { .. })));
}

// ---------------------------------------------------------------------------------------------
// OpenAI-compatible STT

fn oa_stt(fake: &openai::FakeOpenAi) -> OpenAiSttConfig {
    OpenAiSttConfig { base_url: fake.base_url(), api_key: Some("oa-test-key".into()), ..Default::default() }
}

#[tokio::test]
async fn openai_transcription_sends_one_wellformed_multipart_wav_per_turn() {
    let fake = openai::FakeOpenAi::start(openai::Options::default()).await;
    let stt = OpenAiStt::new(oa_stt(&fake)).unwrap();
    let ctx = SttContext { call_id: "c4".into(), language: Some("en-US".into()), ..Default::default() };
    let mut s = stt.open(ctx).await.expect("open");
    assert_eq!(s.format, SttAudioFormat::Linear16k);
    for i in 0..25u64 {
        s.input.send(SttInput::Linear16k { at_samples: 16_000 + i * 320, samples: vec![i as i16; 320] }).await.unwrap();
    }
    s.input.send(SttInput::Finalize).await.unwrap();
    assert_eq!(
        next(&mut s.events).await,
        SttEvent::Final { text: "8000 samples at 16000 Hz".into(), start: 1.0, end: 1.5, confidence: 1.0 }
    );
    s.input.send(SttInput::Close).await.unwrap();
    assert_eq!(next(&mut s.events).await, SttEvent::Closed);
    let reqs = fake.transcription_requests();
    assert_eq!(reqs.len(), 1);
    let field = |name: &str| reqs[0].iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no {name}")).clone();
    let file = field("file");
    assert_eq!(file.filename.as_deref(), Some("audio.wav"));
    assert_eq!(file.content_type.as_deref(), Some("audio/wav"));
    assert_eq!(i16::from_le_bytes([file.data[44 + 320 * 2 * 3], file.data[45 + 320 * 2 * 3]]), 3, "audio in order");
    assert_eq!(field("model").data, b"gpt-4o-mini-transcribe");
    assert_eq!(field("language").data, b"en");

    // A phone call: μ-law decoded to an 8 kHz WAV, sent on Close.
    let mut s = stt.open(phone_ctx()).await.expect("open");
    assert_eq!(s.format, SttAudioFormat::Mulaw8k);
    let mut at = 0;
    say(&s, 0x80, 25, &mut at).await;
    s.input.send(SttInput::Close).await.unwrap();
    assert_eq!(
        next(&mut s.events).await,
        SttEvent::Final { text: "4000 samples at 8000 Hz".into(), start: 0.0, end: 0.5, confidence: 1.0 }
    );
    assert_eq!(next(&mut s.events).await, SttEvent::Closed);
    let file = fake.transcription_requests()[1].iter().find(|p| p.name == "file").cloned().unwrap();
    assert_eq!(i16::from_le_bytes([file.data[44], file.data[45]]), 32124);
}

#[tokio::test]
async fn openai_transcription_faults_are_errors_and_the_stream_goes_on() {
    for (mode, check) in [
        (openai::Mode::Status(429), (|e: &SpeechError| *e == SpeechError::RateLimited { provider: "openai-stt" }) as fn(&SpeechError) -> bool),
        (openai::Mode::Status(401), |e| *e == SpeechError::Unauthorized { provider: "openai-stt", status: 401 }),
        (openai::Mode::Garbage, |e| matches!(e, SpeechError::Protocol { reason, .. } if reason.contains("unreadable reply"))),
        (openai::Mode::Hang, |e| *e == SpeechError::Timeout { provider: "openai-stt", what: "transcription" }),
    ] {
        let fake = openai::FakeOpenAi::start(openai::Options { transcription: mode, ..Default::default() }).await;
        let cfg = OpenAiSttConfig { first_result_timeout: Duration::from_millis(300), ..oa_stt(&fake) };
        let mut s = OpenAiStt::new(cfg).unwrap().open(phone_ctx()).await.expect("open");
        for turn in 0..2 {
            let mut at = 0;
            say(&s, 0x80, 10, &mut at).await;
            s.input.send(SttInput::Finalize).await.unwrap();
            match next(&mut s.events).await {
                SttEvent::Error(e) => assert!(check(&e), "{mode:?} turn {turn}: {e}"),
                other => panic!("{mode:?}: expected an error, got {other:?}"),
            }
        }
        assert_eq!(fake.transcription_requests().len(), 2, "{mode:?}: each turn was tried");
    }
}

// ---------------------------------------------------------------------------------------------
// Fallback

fn collect_pcm(events: &[TtsEvent]) -> Vec<i16> {
    events
        .iter()
        .flat_map(|e| match e {
            TtsEvent::Pcm { samples, .. } => samples.clone(),
            TtsEvent::Done => Vec::new(),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn fallback_speaks_when_the_primary_cannot_open() {
    let el_fake = elevenlabs::FakeElevenLabs::start(elevenlabs::Options { reject_status: Some(401), ..Default::default() }).await;
    let oa_fake = openai::FakeOpenAi::start(openai::Options::default()).await;
    let tts = FallbackTts::new(
        Arc::new(ElevenLabsTts::new(el(&el_fake))),
        Arc::new(OpenAiTts::new(oa_tts(&oa_fake)).unwrap()),
    );
    let mut s = tts.open(tts_ctx(TtsOutputFormat::Mulaw8k)).await.expect("fallback opens");
    speak(&s.input).await;
    let events = until(&mut s.events, |e| *e == TtsEvent::Done).await;
    assert_eq!(collect_pcm(&events), [openai::speech_for("Hi there"), openai::speech_for("Bye")].concat());
}

#[tokio::test]
async fn fallback_speaks_the_same_text_when_the_primary_fails_before_audio() {
    let el_fake = elevenlabs::FakeElevenLabs::start(elevenlabs::Options { mode: elevenlabs::Mode::ErrorMessage, ..Default::default() }).await;
    let oa_fake = openai::FakeOpenAi::start(openai::Options::default()).await;
    let tts = FallbackTts::new(
        Arc::new(ElevenLabsTts::new(el(&el_fake))),
        Arc::new(OpenAiTts::new(oa_tts(&oa_fake)).unwrap()),
    );
    let mut s = tts.open(tts_ctx(TtsOutputFormat::Mulaw8k)).await.expect("primary opens");
    speak(&s.input).await;
    let events = until(&mut s.events, |e| *e == TtsEvent::Done).await;
    assert_eq!(collect_pcm(&events), [openai::speech_for("Hi there"), openai::speech_for("Bye")].concat());
    let inputs: Vec<_> = oa_fake.speech_requests().iter().map(|r| r["input"].clone()).collect();
    assert_eq!(inputs, vec![json!("Hi there"), json!("Bye")]);
    assert_eq!(el_fake.connections().len(), 1, "the primary was tried first");
}
