//! Offline text-to-speech with espeak-ng, in-process (the embedded default).
//!
//! Each stream is a small tokio task that buffers text and hands whole sentences to the
//! process-wide engine thread ([`crate::speech::ffi::espeak`]). PCM comes back at the engine's
//! rate (22,050 Hz) in 20 ms chunks as soon as each is produced; the call resamples.
//!
//! Back-pressure policy: the engine thread is shared by every call, so it never waits long on
//! one slow consumer. If a stream's event channel stays full for [`SLOW_CONSUMER`], that
//! stream's job is stopped and it gets an error, instead of stalling everyone's speech.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use media::SampleRate;
use serde::Deserialize;
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info_span, warn};

use super::{TtsContext, TtsEvent, TtsInput, TtsProvider, TtsStream};
use crate::speech::SpeechError;
use crate::speech::ffi::espeak::{self as engine, Espeak, EspeakError, SynthOutcome};

pub use crate::speech::ffi::espeak::{Gender, Voice};

const PROVIDER: &str = "espeak-ng";
/// Inputs a stream buffers before the caller's `try_send` fails.
const INPUT_CAPACITY: usize = 32;
/// Events (mostly 20 ms PCM chunks) a stream buffers: 10 s of audio.
const EVENT_CAPACITY: usize = 500;
/// How long the shared engine thread waits on one full event channel before giving up on it.
const SLOW_CONSUMER: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EspeakConfig {
    /// A voice name, identifier or language tag espeak-ng accepts (`en-us`, `en-gb`,
    /// `en-us+f3`); `TtsContext::voice` overrides it per call.
    pub voice: String,
    /// Speaking rate in words per minute (espeak-ng accepts 80..=450; 175 is its normal rate).
    /// `TtsContext::speed` multiplies it.
    pub rate_wpm: u32,
}

impl Default for EspeakConfig {
    fn default() -> Self {
        Self { voice: "en-us".into(), rate_wpm: engine::RATE_NORMAL_WPM }
    }
}

/// The installed espeak-ng voices (name, languages, gender), for a voice catalog. Starts the
/// engine if it is not running yet.
pub fn list_voices() -> Result<Vec<Voice>, SpeechError> {
    Ok(Espeak::global().map_err(engine_error)?.voices().to_vec())
}

#[derive(Debug, Clone)]
pub struct EspeakTts {
    config: EspeakConfig,
    engine: &'static Espeak,
}

impl EspeakTts {
    /// Starts the engine thread (tens of milliseconds, once per process). Call at startup.
    pub fn new(config: EspeakConfig) -> Result<Self, SpeechError> {
        let engine = Espeak::global().map_err(engine_error)?;
        Ok(Self { config, engine })
    }

    /// The rate of the PCM this provider emits.
    pub fn sample_rate(&self) -> SampleRate {
        SampleRate::new(self.engine.sample_rate())
    }

    fn rate_for(&self, speed: Option<f32>) -> u32 {
        let speed = speed.filter(|s| s.is_finite() && *s > 0.0).unwrap_or(1.0);
        let wpm = (self.config.rate_wpm as f32 * speed).round() as u32;
        wpm.clamp(engine::RATE_MIN_WPM, engine::RATE_MAX_WPM)
    }
}

#[async_trait]
impl TtsProvider for EspeakTts {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    async fn open(&self, ctx: TtsContext) -> Result<TtsStream, SpeechError> {
        let voice = ctx.voice.clone().unwrap_or_else(|| self.config.voice.clone());
        self.engine.check_voice(&voice).await.map_err(engine_error)?;
        let (input_tx, input_rx) = mpsc::channel(INPUT_CAPACITY);
        let (events_tx, events_rx) = mpsc::channel(EVENT_CAPACITY);
        let stream = StreamTask {
            engine: self.engine,
            voice,
            rate_wpm: self.rate_for(ctx.speed),
            sample_rate: self.sample_rate(),
            input: input_rx,
            events: events_tx,
            pending: VecDeque::new(),
            text: String::new(),
        };
        let span = info_span!("tts", provider = PROVIDER, call_id = %ctx.call_id);
        tokio::spawn(stream.run().instrument(span));
        Ok(TtsStream { input: input_tx, events: events_rx })
    }

    async fn check(&self) -> Result<(), SpeechError> {
        self.engine.check_voice(&self.config.voice).await.map_err(engine_error)
    }
}

fn engine_error(e: EspeakError) -> SpeechError {
    match e {
        EspeakError::UnknownVoice(v) => SpeechError::NotConfigured {
            provider: PROVIDER,
            reason: format!("unknown voice {v:?} (see `espeak-ng --voices`)"),
        },
        other => SpeechError::Engine { provider: PROVIDER, reason: other.to_string() },
    }
}

struct StreamTask {
    engine: &'static Espeak,
    voice: String,
    rate_wpm: u32,
    sample_rate: SampleRate,
    input: mpsc::Receiver<TtsInput>,
    events: mpsc::Sender<TtsEvent>,
    /// Inputs that arrived while a sentence was being synthesized.
    pending: VecDeque<TtsInput>,
    /// Text received but not yet synthesized.
    text: String,
}

/// Why a stream task stops.
enum Stop {
    Cancelled,
    Finished,
    Failed(SpeechError),
}

impl StreamTask {
    async fn run(mut self) {
        let stop = loop {
            let msg = match self.pending.pop_front() {
                Some(m) => m,
                None => match self.input.recv().await {
                    Some(m) => m,
                    // The caller dropped its sender without `Finish`: nobody wants the rest.
                    None => break Stop::Cancelled,
                },
            };
            let step = match msg {
                TtsInput::Text(t) => {
                    self.text.push_str(&t);
                    match take_sentences(&mut self.text) {
                        Some(s) => self.speak(s).await,
                        None => Ok(()),
                    }
                }
                TtsInput::Flush => {
                    let all = std::mem::take(&mut self.text);
                    self.speak(all).await
                }
                TtsInput::Finish => {
                    let all = std::mem::take(&mut self.text);
                    match self.speak(all).await {
                        Ok(()) => Err(Stop::Finished),
                        Err(stop) => Err(stop),
                    }
                }
                TtsInput::Cancel => Err(Stop::Cancelled),
            };
            if let Err(stop) = step {
                break stop;
            }
        };
        match stop {
            Stop::Finished => {
                let _ = self.events.send(TtsEvent::Done).await;
            }
            Stop::Cancelled => debug!("cancelled"),
            Stop::Failed(e) => {
                warn!(error = %e, "synthesis failed");
                let _ = self.events.send(TtsEvent::Error(e)).await;
            }
        }
    }

    /// Synthesizes `text`, streaming its audio out, while still listening for `Cancel`.
    async fn speak(&mut self, text: String) -> Result<(), Stop> {
        if text.trim().is_empty() {
            return Ok(());
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let too_slow = Arc::new(AtomicBool::new(false));
        let sink = make_sink(self.events.clone(), self.sample_rate, cancel.clone(), too_slow.clone());
        let job = self.engine.synthesize(text, self.voice.clone(), self.rate_wpm, sink);
        tokio::pin!(job);
        let mut cancelled = false;
        let outcome = loop {
            tokio::select! {
                outcome = &mut job => break outcome,
                msg = self.input.recv(), if !cancelled => match msg {
                    Some(TtsInput::Cancel) | None => {
                        // The sink sees the flag at its next chunk and stops the engine; we
                        // still wait for the job so the engine is free before we return.
                        cancel.store(true, Ordering::Relaxed);
                        cancelled = true;
                    }
                    Some(other) => self.pending.push_back(other),
                },
            }
        };
        if cancelled {
            return Err(Stop::Cancelled);
        }
        match outcome {
            Ok(SynthOutcome::Completed) => Ok(()),
            Ok(SynthOutcome::Stopped) if too_slow.load(Ordering::Relaxed) => Err(Stop::Failed(SpeechError::Engine {
                provider: PROVIDER,
                reason: "audio consumer too slow; synthesis stopped".into(),
            })),
            // The event receiver is gone: the call no longer wants audio.
            Ok(SynthOutcome::Stopped) => Err(Stop::Cancelled),
            Err(e) => Err(Stop::Failed(engine_error(e))),
        }
    }
}

/// The per-chunk callback run on the engine thread. It never blocks for more than
/// [`SLOW_CONSUMER`] and stops the job once `cancel` is set.
fn make_sink(
    events: mpsc::Sender<TtsEvent>,
    rate: SampleRate,
    cancel: Arc<AtomicBool>,
    too_slow: Arc<AtomicBool>,
) -> engine::Sink {
    Box::new(move |chunk: &[i16]| {
        if cancel.load(Ordering::Relaxed) {
            return ControlFlow::Break(());
        }
        if chunk.is_empty() {
            return ControlFlow::Continue(());
        }
        let mut event = TtsEvent::Pcm { samples: chunk.to_vec(), rate };
        let deadline = Instant::now() + SLOW_CONSUMER;
        loop {
            match events.try_send(event) {
                Ok(()) => return ControlFlow::Continue(()),
                Err(mpsc::error::TrySendError::Closed(_)) => return ControlFlow::Break(()),
                Err(mpsc::error::TrySendError::Full(back)) => {
                    if cancel.load(Ordering::Relaxed) {
                        return ControlFlow::Break(());
                    }
                    if Instant::now() >= deadline {
                        too_slow.store(true, Ordering::Relaxed);
                        return ControlFlow::Break(());
                    }
                    event = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    })
}

/// Removes and returns the leading complete sentences of `buf` (up to the last `.`, `!`, `?`
/// or `;` followed by whitespace), so speech starts before an LLM has finished its reply.
fn take_sentences(buf: &mut String) -> Option<String> {
    let bytes = buf.as_bytes();
    let end = (0..bytes.len().saturating_sub(1))
        .rev()
        .find(|&i| matches!(bytes[i], b'.' | b'!' | b'?' | b';') && bytes[i + 1].is_ascii_whitespace())?;
    let rest = buf.split_off(end + 1);
    Some(std::mem::replace(buf, rest.trim_start().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rms(samples: &[i16]) -> f64 {
        let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        (sum / samples.len().max(1) as f64).sqrt()
    }

    /// Collects PCM until `Done`, an error or the end of the stream.
    async fn collect(stream: &mut TtsStream) -> (Vec<i16>, bool, Option<SampleRate>) {
        let (mut pcm, mut done, mut rate) = (Vec::new(), false, None);
        while let Some(ev) = tokio::time::timeout(Duration::from_secs(20), stream.events.recv())
            .await
            .expect("espeak-ng answers within 20 s")
        {
            match ev {
                TtsEvent::Pcm { samples, rate: r } => {
                    rate = Some(r);
                    pcm.extend(samples);
                }
                TtsEvent::Done => {
                    done = true;
                    break;
                }
                other => panic!("unexpected event {other:?}"),
            }
        }
        (pcm, done, rate)
    }

    #[tokio::test]
    async fn synthesizes_a_phrase_with_sound() {
        let tts = EspeakTts::new(EspeakConfig::default()).expect("espeak-ng is installed");
        let mut stream = tts.open(TtsContext::default()).await.expect("default voice exists");
        stream.input.send(TtsInput::Text("Thank you for calling. How can I help you today?".into())).await.unwrap();
        stream.input.send(TtsInput::Finish).await.unwrap();
        let (pcm, done, rate) = collect(&mut stream).await;
        assert!(done, "Done after Finish");
        assert_eq!(rate, Some(SampleRate::HZ_22050));
        let secs = pcm.len() as f64 / 22_050.0;
        assert!((1.5..6.0).contains(&secs), "duration {secs:.2} s");
        assert!(rms(&pcm) > 500.0, "not silent: rms {}", rms(&pcm));
    }

    #[tokio::test]
    async fn slower_rate_gives_longer_audio() {
        let text = "Please hold while I connect you to billing.";
        let mut lens = Vec::new();
        for rate_wpm in [120, 300] {
            let tts = EspeakTts::new(EspeakConfig { voice: "en-us".into(), rate_wpm }).unwrap();
            let mut s = tts.open(TtsContext::default()).await.unwrap();
            s.input.send(TtsInput::Text(text.into())).await.unwrap();
            s.input.send(TtsInput::Finish).await.unwrap();
            lens.push(collect(&mut s).await.0.len());
        }
        assert!(lens[0] as f64 > lens[1] as f64 * 1.5, "120 wpm {} vs 300 wpm {}", lens[0], lens[1]);
    }

    #[tokio::test]
    async fn cancel_stops_mid_utterance() {
        let text = "This is a long announcement that keeps going for quite a while, listing \
                    every department, every opening hour and every holiday of the year, \
                    so that a caller has plenty of time to interrupt it";
        let tts = EspeakTts::new(EspeakConfig { voice: "en-us".into(), rate_wpm: 120 }).unwrap();

        let mut full = tts.open(TtsContext::default()).await.unwrap();
        full.input.send(TtsInput::Text(text.into())).await.unwrap();
        full.input.send(TtsInput::Finish).await.unwrap();
        let full_len = collect(&mut full).await.0.len();

        let mut s = tts.open(TtsContext::default()).await.unwrap();
        s.input.send(TtsInput::Text(text.into())).await.unwrap();
        s.input.send(TtsInput::Flush).await.unwrap();
        let mut got = 0;
        match s.events.recv().await {
            Some(TtsEvent::Pcm { samples, .. }) => got += samples.len(),
            other => panic!("expected audio first, got {other:?}"),
        }
        s.input.send(TtsInput::Cancel).await.unwrap();
        let mut saw_done = false;
        while let Some(ev) = s.events.recv().await {
            match ev {
                TtsEvent::Pcm { samples, .. } => got += samples.len(),
                TtsEvent::Done => saw_done = true,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(!saw_done, "no Done after Cancel");
        assert!(got < full_len / 2, "cancelled stream produced {got} of {full_len} samples");
    }

    #[tokio::test]
    async fn unknown_voice_is_a_clear_error() {
        let tts = EspeakTts::new(EspeakConfig::default()).unwrap();
        let ctx = TtsContext { voice: Some("no-such-voice-xyz".into()), ..Default::default() };
        match tts.open(ctx).await {
            Err(SpeechError::NotConfigured { provider, reason }) => {
                assert_eq!(provider, "espeak-ng");
                assert!(reason.contains("no-such-voice-xyz"), "{reason}");
            }
            other => panic!("expected NotConfigured, got {other:?}"),
        }
        let bad = EspeakTts::new(EspeakConfig { voice: "no-such-voice-xyz".into(), rate_wpm: 175 }).unwrap();
        assert!(matches!(bad.check().await, Err(SpeechError::NotConfigured { .. })));
        // The engine still works for others afterwards.
        assert!(tts.check().await.is_ok());
    }

    #[test]
    fn lists_english_voices() {
        let voices = list_voices().expect("espeak-ng is installed");
        let us = voices.iter().find(|v| v.languages.iter().any(|l| l == "en-us")).expect("an en-us voice");
        assert!(!us.name.is_empty());
        assert!(voices.len() > 20, "espeak-ng-data ships many voices, got {}", voices.len());
    }

    #[test]
    fn config_rejects_unknown_fields() {
        let ok: EspeakConfig = toml::from_str("voice = \"en-gb\"").unwrap();
        assert_eq!(ok, EspeakConfig { voice: "en-gb".into(), rate_wpm: 175 });
        assert!(toml::from_str::<EspeakConfig>("voise = \"en-gb\"").is_err());
    }

    #[test]
    fn sentences_are_split_off_complete() {
        let mut b = String::from("Hello there. How are");
        assert_eq!(take_sentences(&mut b).as_deref(), Some("Hello there."));
        assert_eq!(b, "How are");
        assert_eq!(take_sentences(&mut b), None);
        b.push_str(" you? Fine! Ok");
        assert_eq!(take_sentences(&mut b).as_deref(), Some("How are you? Fine!"));
        assert_eq!(b, "Ok");
        let mut trailing = String::from("Version 2.5 is out.");
        assert_eq!(take_sentences(&mut trailing), None, "no whitespace after the last stop yet");
    }
}
