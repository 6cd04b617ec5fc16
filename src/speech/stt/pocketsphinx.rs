//! Offline speech-to-text with pocketsphinx, in-process (the embedded default).
//!
//! Two modes:
//! - **Grammar** (default): a JSGF grammar built when the stream opens from
//!   `SttContext::phrases` (a flow's routing intents: "billing", "talk to sales", "an agent
//!   please"). The recogniser can only answer with one of those phrases, which is what makes it
//!   accurate on short routing answers.
//! - **Language model**: free-form dictation with the stock en-us trigram model. Accuracy is
//!   low (espeak-ng's "please transfer me to billing" came back as "these drops we can
//!   really"); it is there for transcripts where a rough idea is better than nothing.
//!
//! Decoding is CPU work, so every stream runs on its own OS thread fed by the bounded input
//! channel; the thread feeds each chunk to the decoder as it arrives, so results are ready
//! soon after the caller stops talking. Loading a decoder (acoustic model + 134k-word
//! dictionary) is slow, so decoders are kept in a per-provider pool and reused across calls;
//! only the grammar changes per call.
//!
//! Telephone audio: the en-us model is 16 kHz only, and μ-law 8 kHz audio upsampled to 16 kHz
//! has nothing above 4 kHz, which the model has never seen: recognition fails almost
//! entirely. Mixing a little white noise into the upsampled signal fills those bands and brings
//! it back (see BENCHMARKS.md, "Offline speech"). Streams whose native format is `Mulaw8k` get
//! this automatically; `telephone_band` forces it on or off.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use media::codec::g711::ulaw_decode;
use media::{SampleRate, StreamResampler};
use serde::Deserialize;
use tokio::sync::mpsc;
use tracing::{debug, info_span, trace, warn};

use super::{SttAudioFormat, SttContext, SttEvent, SttInput, SttProvider, SttStream};
use crate::speech::SpeechError;
use crate::speech::ffi::pocketsphinx::{Decoder, DecoderConfig, FRAMES_PER_SECOND, PsError, SAMPLE_RATE};

const PROVIDER: &str = "pocketsphinx";
/// Input chunks (20 ms each) a stream buffers: 2 s. Decoding runs ~20x faster than real
/// time, so this only fills if the machine is badly overloaded; then `try_send` fails and the
/// call counts the loss (back-pressure for STT, as the design says).
const INPUT_CAPACITY: usize = 100;
const EVENT_CAPACITY: usize = 32;
/// Search name for the per-call grammar.
const GRAMMAR_SEARCH: &str = "phrases";
/// Emit a partial at most every this many samples of audio (100 ms at 16 kHz).
const PARTIAL_EVERY: u64 = 1_600;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PocketsphinxMode {
    /// JSGF grammar from the call's expected phrases.
    #[default]
    Grammar,
    /// Free-form recognition with the statistical language model (low accuracy).
    LanguageModel,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PocketsphinxConfig {
    pub mode: PocketsphinxMode,
    /// Directory holding the `en-us/` acoustic model, `cmudict-en-us.dict` and
    /// `en-us.lm.bin` (Debian `pocketsphinx-en-us`).
    pub model_dir: PathBuf,
    /// Force the telephone-band fix on or off; unset means "on when the call's native audio
    /// is μ-law 8 kHz".
    pub telephone_band: Option<bool>,
    /// Peak level of the white noise mixed into telephone-band audio, in dBFS. -40 was the
    /// best of a sweep from -70 to -35 on the espeak-ng routing set (BENCHMARKS.md); the
    /// margin over -45..-60 was one clip in 36.
    pub telephone_noise_dbfs: f32,
    /// Idle decoders kept for reuse (memory per decoder: see BENCHMARKS.md).
    pub pool_size: usize,
}

impl Default for PocketsphinxConfig {
    fn default() -> Self {
        Self {
            mode: PocketsphinxMode::Grammar,
            model_dir: PathBuf::from("/usr/share/pocketsphinx/model/en-us"),
            telephone_band: None,
            telephone_noise_dbfs: -40.0,
            pool_size: 4,
        }
    }
}

impl PocketsphinxConfig {
    fn decoder_config(&self) -> DecoderConfig {
        DecoderConfig {
            hmm: self.model_dir.join("en-us"),
            dict: self.model_dir.join("cmudict-en-us.dict"),
            lm: (self.mode == PocketsphinxMode::LanguageModel).then(|| self.model_dir.join("en-us.lm.bin")),
            extra: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PocketsphinxStt {
    config: Arc<PocketsphinxConfig>,
    pool: Arc<Mutex<Vec<Decoder>>>,
}

impl PocketsphinxStt {
    pub fn new(config: PocketsphinxConfig) -> Self {
        Self { config: Arc::new(config), pool: Arc::new(Mutex::new(Vec::new())) }
    }

    /// Loads `n` decoders into the pool now (blocking; run at startup or in `spawn_blocking`),
    /// so the first calls do not pay the model load. Returns the load time of each.
    pub fn prewarm(&self, n: usize) -> Result<Vec<std::time::Duration>, SpeechError> {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let t0 = Instant::now();
            let d = Decoder::new(&self.config.decoder_config()).map_err(engine_error)?;
            times.push(t0.elapsed());
            give_back(&self.pool, self.config.pool_size, d);
        }
        Ok(times)
    }

    /// A decoder from the pool, or a freshly loaded one.
    fn take_decoder(config: &PocketsphinxConfig, pool: &Mutex<Vec<Decoder>>) -> Result<Decoder, SpeechError> {
        let pooled = pool.lock().expect("pool lock is never held across a panic").pop();
        match pooled {
            Some(d) => Ok(d),
            None => {
                let t0 = Instant::now();
                let d = Decoder::new(&config.decoder_config()).map_err(engine_error)?;
                debug!(elapsed_ms = t0.elapsed().as_millis() as u64, "loaded a pocketsphinx decoder");
                Ok(d)
            }
        }
    }
}

fn give_back(pool: &Mutex<Vec<Decoder>>, max: usize, d: Decoder) {
    let mut pool = pool.lock().expect("pool lock is never held across a panic");
    if pool.len() < max {
        pool.push(d);
    }
}

fn engine_error(e: PsError) -> SpeechError {
    SpeechError::Engine { provider: PROVIDER, reason: e.to_string() }
}

#[async_trait]
impl SttProvider for PocketsphinxStt {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    /// Only with the language model; its accuracy on free speech is low (BENCHMARKS.md).
    fn recognizes_free_speech(&self) -> bool {
        self.config.mode == PocketsphinxMode::LanguageModel
    }

    async fn open(&self, ctx: SttContext) -> Result<SttStream, SpeechError> {
        let grammar = match self.config.mode {
            PocketsphinxMode::Grammar => Some(Grammar::from_phrases(&ctx.phrases)?),
            PocketsphinxMode::LanguageModel => None,
        };
        let telephone = self.config.telephone_band.unwrap_or(ctx.native_format == Some(SttAudioFormat::Mulaw8k));
        let (config, pool) = (self.config.clone(), self.pool.clone());
        // Loading a decoder and compiling a grammar are blocking C calls.
        let decoder = tokio::task::spawn_blocking(move || {
            let mut d = Self::take_decoder(&config, &pool)?;
            if let Some(g) = &grammar
                && let Err(e) = g.install(&mut d)
            {
                give_back(&pool, config.pool_size, d);
                return Err(e);
            }
            d.start_stream().map_err(engine_error)?;
            Ok(d)
        })
        .await
        .map_err(|e| SpeechError::Engine { provider: PROVIDER, reason: format!("loader task failed: {e}") })??;

        let (input_tx, input_rx) = mpsc::channel(INPUT_CAPACITY);
        let (events_tx, events_rx) = mpsc::channel(EVENT_CAPACITY);
        let noise = telephone.then(|| Noise::new(self.config.telephone_noise_dbfs));
        let recognizer = Recognizer::new(decoder, noise, events_tx);
        let span = info_span!("stt", provider = PROVIDER, call_id = %ctx.call_id, telephone);
        let (pool, max) = (self.pool.clone(), self.config.pool_size);
        std::thread::Builder::new()
            .name("pocketsphinx".into())
            .spawn(move || {
                let _enter = span.enter();
                if let Some(decoder) = recognizer.run(input_rx) {
                    give_back(&pool, max, decoder);
                }
            })
            .map_err(|e| SpeechError::Engine { provider: PROVIDER, reason: format!("could not start a thread: {e}") })?;
        Ok(SttStream { input: input_tx, events: events_rx, format: SttAudioFormat::Linear16k })
    }

    async fn check(&self) -> Result<(), SpeechError> {
        let dc = self.config.decoder_config();
        for path in [Some(&dc.hmm), Some(&dc.dict), dc.lm.as_ref()].into_iter().flatten() {
            if !path.exists() {
                return Err(SpeechError::NotConfigured {
                    provider: PROVIDER,
                    reason: format!("{} is missing (install pocketsphinx-en-us)", path.display()),
                });
            }
        }
        Ok(())
    }
}

/// A JSGF grammar accepting exactly one of the call's phrases.
#[derive(Debug, Clone, PartialEq)]
struct Grammar {
    /// Normalised phrases: lower case, words separated by single spaces.
    phrases: Vec<String>,
}

impl Grammar {
    fn from_phrases(phrases: &[String]) -> Result<Grammar, SpeechError> {
        let mut out: Vec<String> = Vec::new();
        for p in phrases {
            let norm = normalize(p);
            if !norm.is_empty() && !out.contains(&norm) {
                out.push(norm);
            }
        }
        if out.is_empty() {
            return Err(SpeechError::NotConfigured {
                provider: PROVIDER,
                reason: "grammar mode needs at least one expected phrase (SttContext::phrases is empty)".into(),
            });
        }
        Ok(Grammar { phrases: out })
    }

    fn jsgf(&self) -> String {
        format!("#JSGF V1.0;\ngrammar call;\npublic <phrase> = {};\n", self.phrases.join(" | "))
    }

    /// Checks every word against the dictionary (pocketsphinx would only log the problem) and
    /// makes this grammar the decoder's search.
    fn install(&self, d: &mut Decoder) -> Result<(), SpeechError> {
        let mut missing: Vec<&str> = self.phrases.iter().flat_map(|p| p.split(' ')).filter(|w| !d.has_word(w)).collect();
        missing.dedup();
        if !missing.is_empty() {
            return Err(SpeechError::NotConfigured {
                provider: PROVIDER,
                reason: format!("words not in the pronunciation dictionary: {}", missing.join(", ")),
            });
        }
        d.set_jsgf(GRAMMAR_SEARCH, &self.jsgf()).map_err(engine_error)?;
        d.set_search(GRAMMAR_SEARCH).map_err(engine_error)
    }
}

/// Lower case, letters/digits/apostrophes only, single spaces.
fn normalize(phrase: &str) -> String {
    phrase
        .to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Deterministic white noise (xorshift32), uniform in ±`peak`.
#[derive(Debug, Clone)]
struct Noise {
    state: u32,
    peak: f32,
}

impl Noise {
    fn new(dbfs: f32) -> Self {
        Self { state: 0x9E37_79B9, peak: 32_767.0 * 10f32.powf(dbfs / 20.0) }
    }

    fn next(&mut self) -> f32 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.state = x;
        (x as f32 / u32::MAX as f32 * 2.0 - 1.0) * self.peak
    }

    fn mix_into(&mut self, samples: &mut [i16]) {
        for s in samples {
            *s = (f32::from(*s) + self.next()).round().clamp(-32_768.0, 32_767.0) as i16;
        }
    }
}

/// The utterance being decoded.
#[derive(Debug)]
struct Utterance {
    /// Stream position (samples at 16 kHz) of its first sample.
    start: u64,
    last_partial: Option<String>,
    last_partial_at: u64,
}

/// One stream's decoding loop, on its own thread.
struct Recognizer {
    decoder: Decoder,
    noise: Option<Noise>,
    events: mpsc::Sender<SttEvent>,
    /// 8 -> 16 kHz for `Mulaw8k` input, made on first use.
    upsampler: Option<StreamResampler>,
    /// Samples (16 kHz) fed to the decoder so far: the stream's clock. Event times count
    /// audio received, so a gap in the input (lost frames) shortens them.
    fed: u64,
    utt: Option<Utterance>,
    in_speech: bool,
}

impl Recognizer {
    fn new(decoder: Decoder, noise: Option<Noise>, events: mpsc::Sender<SttEvent>) -> Self {
        Self { decoder, noise, events, upsampler: None, fed: 0, utt: None, in_speech: false }
    }

    /// Runs until `Close` or until the caller drops the input. Returns the decoder for reuse
    /// if it is still in a clean state.
    fn run(mut self, mut input: mpsc::Receiver<SttInput>) -> Option<Decoder> {
        let started = Instant::now();
        while let Some(msg) = input.blocking_recv() {
            let step = match msg {
                SttInput::Linear16k { samples, .. } => self.audio(samples),
                SttInput::Mulaw8k { bytes, .. } => self.mulaw(&bytes),
                SttInput::Finalize => self.finalize(true),
                SttInput::Close => match self.finalize(false) {
                    Ok(()) => {
                        let _ = self.events.blocking_send(SttEvent::Closed);
                        break;
                    }
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = step {
                warn!(error = %e, "decoding failed");
                let _ = self.events.blocking_send(SttEvent::Error(e));
                let _ = self.events.blocking_send(SttEvent::Closed);
                // The decoder may be mid-utterance in an unknown state: do not reuse it.
                return None;
            }
            if self.events.is_closed() {
                break;
            }
        }
        debug!(audio_s = self.fed as f64 / SAMPLE_RATE as f64, wall_ms = started.elapsed().as_millis() as u64, "stream ended");
        if self.utt.is_some() && self.decoder.end_utt().is_err() {
            return None;
        }
        Some(self.decoder)
    }

    fn mulaw(&mut self, bytes: &[u8]) -> Result<(), SpeechError> {
        let pcm8: Vec<i16> = bytes.iter().map(|&b| ulaw_decode(b)).collect();
        if self.upsampler.is_none() {
            let r = StreamResampler::new(SampleRate::HZ_8000, SampleRate::HZ_16000)
                .map_err(|e| SpeechError::Engine { provider: PROVIDER, reason: e.to_string() })?;
            self.upsampler = Some(r);
        }
        let up = self.upsampler.as_mut().expect("created just above");
        let mut pcm16 = Vec::with_capacity(pcm8.len() * 2);
        up.process(&pcm8, &mut pcm16).map_err(|e| SpeechError::Engine { provider: PROVIDER, reason: e.to_string() })?;
        self.audio(pcm16)
    }

    fn audio(&mut self, mut samples: Vec<i16>) -> Result<(), SpeechError> {
        if samples.is_empty() {
            return Ok(());
        }
        if self.utt.is_none() {
            self.decoder.start_utt().map_err(engine_error)?;
            self.utt = Some(Utterance { start: self.fed, last_partial: None, last_partial_at: self.fed });
        }
        if let Some(noise) = &mut self.noise {
            noise.mix_into(&mut samples);
        }
        trace!(n = samples.len(), "decode");
        self.decoder.process(&samples).map_err(engine_error)?;
        self.fed += samples.len() as u64;

        let now = self.seconds(self.fed);
        let speaking = self.decoder.in_speech();
        if speaking != self.in_speech {
            self.in_speech = speaking;
            self.emit(if speaking { SttEvent::SpeechStarted { at: now } } else { SttEvent::SpeechEnded { at: now } });
        }
        let utt = self.utt.as_mut().expect("started above");
        if self.fed - utt.last_partial_at >= PARTIAL_EVERY {
            utt.last_partial_at = self.fed;
            if let Some(hyp) = self.decoder.hyp() {
                let utt = self.utt.as_mut().expect("started above");
                if utt.last_partial.as_deref() != Some(hyp.as_str()) {
                    utt.last_partial = Some(hyp.clone());
                    self.emit(SttEvent::Partial { text: hyp });
                }
            }
        }
        Ok(())
    }

    /// Ends the current utterance and emits its `Final`. With `always`, an empty `Final` is
    /// emitted even when no audio came since the last one, so a caller waiting on the end of
    /// a turn always gets an answer.
    fn finalize(&mut self, always: bool) -> Result<(), SpeechError> {
        let Some(utt) = self.utt.take() else {
            if always {
                let at = self.seconds(self.fed);
                self.emit(SttEvent::Final { text: String::new(), start: at, end: at, confidence: 0.0 });
            }
            return Ok(());
        };
        self.decoder.end_utt().map_err(engine_error)?;
        let text = self.decoder.hyp().unwrap_or_default();
        let words: Vec<_> = self
            .decoder
            .segments()
            .into_iter()
            .filter(|s| !(s.word.starts_with('<') || s.word.starts_with('[') || s.word.starts_with('+')))
            .collect();
        // Frames count from the start of the stream (ps_start_stream at open), not the utterance.
        let frame = |f: i32| (f.max(0) as u64) * u64::from(SAMPLE_RATE / FRAMES_PER_SECOND);
        let (start, end) = match (words.first(), words.last()) {
            (Some(first), Some(last)) => (frame(first.start_frame).max(utt.start), frame(last.end_frame + 1)),
            _ => (utt.start, self.fed),
        };
        let confidence = if text.is_empty() { 0.0 } else { self.decoder.probability() as f32 };
        if self.in_speech {
            self.in_speech = false;
            self.emit(SttEvent::SpeechEnded { at: self.seconds(self.fed) });
        }
        let (start, end) = (self.seconds(start), self.seconds(end.min(self.fed)));
        debug!(%text, start, end, "final");
        self.emit(SttEvent::Final { text, start, end, confidence });
        Ok(())
    }

    fn seconds(&self, samples16k: u64) -> f64 {
        samples16k as f64 / SAMPLE_RATE as f64
    }

    /// Sends an event, waiting if the caller is behind: this thread belongs to this stream
    /// alone, so waiting here only slows this call's recognition (back-pressure).
    fn emit(&self, ev: SttEvent) {
        let _ = self.events.blocking_send(ev);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use media::codec::g711::ulaw_encode;

    use super::*;
    use crate::speech::tts::espeak::{EspeakConfig, EspeakTts};
    use crate::speech::tts::{TtsContext, TtsEvent, TtsInput, TtsProvider};

    const PHRASES: [&str; 6] = ["billing", "talk to sales", "an agent please", "i need support", "a human", "sales"];

    /// `text` spoken by espeak-ng, resampled to `rate` with the media crate, plus 300 ms of
    /// silence on both sides as a caller's turn would have.
    async fn speak(text: &str, rate: SampleRate) -> Vec<i16> {
        let tts = EspeakTts::new(EspeakConfig::default()).expect("espeak-ng is installed");
        let mut s = tts.open(TtsContext::default()).await.expect("default voice");
        s.input.send(TtsInput::Text(text.into())).await.unwrap();
        s.input.send(TtsInput::Finish).await.unwrap();
        let mut pcm = vec![0i16; 22_050 * 3 / 10];
        while let Some(ev) = s.events.recv().await {
            match ev {
                TtsEvent::Pcm { samples, .. } => pcm.extend(samples),
                TtsEvent::Done => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        pcm.extend(vec![0i16; 22_050 * 3 / 10 + 441]);
        let mut r = StreamResampler::new(SampleRate::HZ_22050, rate).expect("supported rates");
        let mut out = Vec::new();
        r.process(&pcm, &mut out).expect("resampling works");
        out
    }

    fn ctx(native: SttAudioFormat) -> SttContext {
        SttContext {
            call_id: "test".into(),
            phrases: PHRASES.iter().map(|s| s.to_string()).collect(),
            native_format: Some(native),
            ..Default::default()
        }
    }

    /// Sends `input` then `Finalize`, returns (partials, final text, start, end).
    async fn recognise(stream: &mut SttStream, input: Vec<SttInput>) -> (Vec<String>, String, f64, f64) {
        for i in input {
            stream.input.send(i).await.unwrap();
        }
        stream.input.send(SttInput::Finalize).await.unwrap();
        let mut partials = Vec::new();
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(30), stream.events.recv())
                .await
                .expect("a result within 30 s")
                .expect("stream open");
            match ev {
                SttEvent::Partial { text } => partials.push(text),
                SttEvent::Final { text, start, end, .. } => return (partials, text, start, end),
                SttEvent::SpeechStarted { .. } | SttEvent::SpeechEnded { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn recognises_grammar_phrases_at_16k() {
        let stt = PocketsphinxStt::new(PocketsphinxConfig::default());
        // Twice, so the second call reuses the pooled decoder of the first.
        for _call in 0..2 {
            recognise_two_turns(&stt).await;
        }
    }

    async fn recognise_two_turns(stt: &PocketsphinxStt) {
        let mut stream = stt.open(ctx(SttAudioFormat::Linear16k)).await.expect("model installed");
        assert_eq!(stream.format, SttAudioFormat::Linear16k);
        let mut offset = 0.0;
        for phrase in ["talk to sales", "an agent please"] {
            let pcm = speak(phrase, SampleRate::HZ_16000).await;
            let secs = pcm.len() as f64 / 16_000.0;
            let chunks = pcm
                .chunks(320)
                .enumerate()
                .map(|(i, c)| SttInput::Linear16k { at_samples: i as u64 * 320, samples: c.to_vec() })
                .collect();
            let (partials, text, start, end) = recognise(&mut stream, chunks).await;
            assert_eq!(text, phrase);
            assert!(!partials.is_empty(), "partials stream while audio arrives");
            // Speech starts after the 300 ms of lead-in silence and ends before the tail.
            let (s, e) = (start - offset, end - offset);
            assert!(0.2 < s && s < e && e < secs - 0.1, "turn at {offset}: word span {s}..{e} of {secs}");
            offset += secs;
        }
        stream.input.send(SttInput::Close).await.unwrap();
        let mut closed = false;
        while let Some(ev) = stream.events.recv().await {
            closed |= ev == SttEvent::Closed;
        }
        assert!(closed);
    }

    #[tokio::test]
    async fn recognises_mulaw_8k_with_the_telephone_band_fix() {
        let stt = PocketsphinxStt::new(PocketsphinxConfig::default());
        let mut stream = stt.open(ctx(SttAudioFormat::Mulaw8k)).await.unwrap();
        let pcm = speak("i need support", SampleRate::HZ_8000).await;
        let chunks = pcm
            .chunks(160)
            .enumerate()
            .map(|(i, c)| SttInput::Mulaw8k { at_samples: i as u64 * 160, bytes: c.iter().map(|&s| ulaw_encode(s)).collect() })
            .collect();
        let (_, text, _, _) = recognise(&mut stream, chunks).await;
        assert_eq!(text, "i need support");
    }

    #[tokio::test]
    async fn finalize_without_audio_gives_an_empty_final() {
        let stt = PocketsphinxStt::new(PocketsphinxConfig::default());
        let mut stream = stt.open(ctx(SttAudioFormat::Linear16k)).await.unwrap();
        let (_, text, start, end) = recognise(&mut stream, Vec::new()).await;
        assert_eq!((text.as_str(), start, end), ("", 0.0, 0.0));
    }

    #[tokio::test]
    async fn bad_grammars_are_clear_errors() {
        let stt = PocketsphinxStt::new(PocketsphinxConfig::default());
        let empty = SttContext { phrases: vec!["  ".into(), "?!".into()], ..Default::default() };
        match stt.open(empty).await {
            Err(SpeechError::NotConfigured { reason, .. }) => assert!(reason.contains("at least one"), "{reason}"),
            other => panic!("expected NotConfigured, got {other:?}"),
        }
        let unknown = SttContext { phrases: vec!["billing".into(), "zorblax qwvv".into()], ..Default::default() };
        match stt.open(unknown).await {
            Err(SpeechError::NotConfigured { reason, .. }) => {
                assert!(reason.contains("zorblax") && reason.contains("qwvv"), "{reason}")
            }
            other => panic!("expected NotConfigured, got {other:?}"),
        }
        // The decoder that rejected the grammar went back to the pool and still works.
        assert!(stt.open(ctx(SttAudioFormat::Linear16k)).await.is_ok());
    }

    #[tokio::test]
    async fn a_missing_model_is_reported() {
        let cfg = PocketsphinxConfig { model_dir: "/nonexistent/model".into(), ..Default::default() };
        let stt = PocketsphinxStt::new(cfg);
        assert!(matches!(stt.check().await, Err(SpeechError::NotConfigured { .. })));
        assert!(matches!(stt.open(ctx(SttAudioFormat::Linear16k)).await, Err(SpeechError::Engine { .. })));
    }

    #[test]
    fn phrases_are_normalised_and_deduplicated() {
        let g = Grammar::from_phrases(&["Talk to Sales!".into(), "talk  to sales".into(), "I'd like billing, please".into()])
            .unwrap();
        assert_eq!(g.phrases, ["talk to sales", "i'd like billing please"]);
        assert!(g.jsgf().contains("public <phrase> = talk to sales | i'd like billing please;"));
    }

    #[test]
    fn config_rejects_unknown_fields() {
        let c: PocketsphinxConfig = toml::from_str("mode = \"language_model\"\ntelephone_band = true").unwrap();
        assert_eq!(c.mode, PocketsphinxMode::LanguageModel);
        assert_eq!(c.telephone_band, Some(true));
        assert!(toml::from_str::<PocketsphinxConfig>("modes = \"grammar\"").is_err());
    }
}
