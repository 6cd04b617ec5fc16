use std::time::Duration;

use super::*;
use crate::codec::g711::{ulaw_decode, ulaw_encode};
use crate::test_util::sine;
use crate::vad::{EarshotVad, WebRtcVad, WebRtcVadMode};
use crate::{SampleRate, StreamResampler};

const RATE: SampleRate = SampleRate::HZ_16000;

/// An engine that calls everything speech, so only the volume gate decides: this makes the
/// state machine's timing exactly checkable with tones.
struct GateOnly;

impl Vad for GateOnly {
    fn name(&self) -> &'static str {
        "gate-only"
    }
    fn rate(&self) -> SampleRate {
        RATE
    }
    fn score(&mut self, _frame: &[i16]) -> Result<f32, VadError> {
        Ok(1.0)
    }
    fn reset(&mut self) {}
    fn heap_bytes(&self) -> usize {
        0
    }
}

/// Runs `signal` through `det` in 20 ms frames; returns (frame index, event) pairs.
fn run<V: Vad>(det: &mut VoiceDetector<V>, signal: &[i16]) -> Vec<(usize, VadEvent)> {
    let frame = RATE.samples_in_ms(20);
    let mut events = Vec::new();
    for (i, chunk) in signal.chunks_exact(frame).enumerate() {
        let at = Timestamp::new((i * frame) as u64, RATE);
        if let Some(ev) = det.push(chunk, at).expect("20 ms frames are valid") {
            events.push((i, ev));
        }
    }
    events
}

fn ms(n: u64) -> usize {
    RATE.samples_in_ms(n as u32)
}

fn silence(len: usize) -> Vec<i16> {
    vec![0; len]
}

fn tone(len: usize, amp: f64) -> Vec<i16> {
    sine(440.0, RATE.hz(), len, amp)
}

#[test]
fn tone_between_silences_gives_exact_timestamps() {
    let cfg = VadConfig {
        start: Duration::from_millis(200),
        stop: Duration::from_millis(400),
        ..VadConfig::default()
    };
    let mut det = VoiceDetector::new(GateOnly, cfg);
    let signal = [silence(ms(1000)), tone(ms(1500), 8000.0), silence(ms(1000))].concat();
    let events = run(&mut det, &signal);
    assert_eq!(
        events,
        vec![
            // Onset at 1.0 s; confirmed by the frame ending at 1.2 s (frame 59).
            (
                59,
                VadEvent::SpeechStarted {
                    at: Timestamp::new(16_000, RATE)
                }
            ),
            // First silent sample at 2.5 s; confirmed by the frame ending at 2.9 s (frame 144).
            (
                144,
                VadEvent::SpeechEnded {
                    at: Timestamp::new(40_000, RATE),
                    duration: Duration::from_millis(1500)
                }
            ),
        ]
    );
    assert!(!det.is_speaking());
}

#[test]
fn short_bursts_and_short_gaps_are_ignored() {
    let cfg = VadConfig {
        start: Duration::from_millis(200),
        stop: Duration::from_millis(400),
        ..VadConfig::default()
    };
    let mut det = VoiceDetector::new(GateOnly, cfg);
    let signal = [
        silence(ms(500)),
        tone(ms(100), 8000.0), // a click: shorter than `start`
        silence(ms(500)),
        tone(ms(600), 8000.0),
        silence(ms(300)), // a pause between words: shorter than `stop`
        tone(ms(600), 8000.0),
        silence(ms(600)),
    ]
    .concat();
    let events: Vec<VadEvent> = run(&mut det, &signal).into_iter().map(|(_, e)| e).collect();
    assert_eq!(
        events,
        vec![
            VadEvent::SpeechStarted {
                at: Timestamp::new(ms(1100) as u64, RATE)
            },
            VadEvent::SpeechEnded {
                at: Timestamp::new(ms(2600) as u64, RATE),
                duration: Duration::from_millis(1500)
            },
        ]
    );
}

#[test]
fn the_volume_gate_silences_quiet_sound() {
    let mut det = VoiceDetector::new(GateOnly, VadConfig::default());
    // -3 dBFS sine at amplitude 200 is about -47 dBFS rms: below the -45 dBFS gate.
    let quiet = tone(ms(2000), 200.0);
    assert!(run(&mut det, &quiet).is_empty());
    assert_eq!(det.state(), VadState::Quiet);
    let loud = tone(ms(400), 400.0);
    assert_eq!(run(&mut det, &loud).len(), 1, "-41 dBFS passes the gate");
    assert!(det.is_speaking());
}

#[test]
fn is_speaking_tracks_the_states() {
    let cfg = VadConfig {
        start: Duration::from_millis(40),
        stop: Duration::from_millis(60),
        ..VadConfig::default()
    };
    let mut det = VoiceDetector::new(GateOnly, cfg);
    let loud = tone(ms(20), 8000.0);
    let quiet = silence(ms(20));
    let t = |i: u64| Timestamp::new(i * 320, RATE);
    let mut states = Vec::new();
    for (i, f) in [&loud, &loud, &quiet, &loud, &quiet, &quiet, &quiet]
        .iter()
        .enumerate()
    {
        det.push(f, t(i as u64)).expect("valid frame");
        states.push(det.is_speaking());
    }
    assert_eq!(states, [false, true, true, true, true, true, false]);
}

/// Makes speech with espeak-ng (22,050 Hz) and returns it with the speech extent of each
/// utterance in seconds, found from the signal itself (espeak pads with digital silence).
fn espeak_conversation() -> (Vec<i16>, Vec<(f64, f64)>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let phrases = [
        "hello there how are you today",
        "I would like to talk to billing please",
        "thank you very much",
    ];
    let gaps_ms = [700u32, 1000, 800, 1000];
    let rate = SampleRate::HZ_22050;
    let mut signal = silence(rate.samples_in_ms(gaps_ms[0]));
    let mut truth = Vec::new();
    for (i, phrase) in phrases.iter().enumerate() {
        let path = dir.path().join(format!("{i}.wav"));
        let status = std::process::Command::new("espeak-ng")
            .arg("-w")
            .arg(&path)
            .arg(phrase)
            .status()
            .expect("espeak-ng is installed (Debian package espeak-ng)");
        assert!(status.success(), "espeak-ng failed");
        let audio = crate::read_wav(&path).expect("espeak-ng writes WAV");
        assert_eq!(audio.rate, rate, "espeak-ng speaks at 22,050 Hz");
        let loud = |s: &i16| s.unsigned_abs() > 300;
        let first = audio
            .samples
            .iter()
            .position(loud)
            .expect("speech in the file");
        let last = audio
            .samples
            .iter()
            .rposition(loud)
            .expect("speech in the file");
        let base = signal.len();
        let secs = |n: usize| n as f64 / f64::from(rate.hz());
        truth.push((secs(base + first), secs(base + last + 1)));
        signal.extend_from_slice(&audio.samples);
        signal.extend(silence(rate.samples_in_ms(gaps_ms[i + 1])));
    }
    // A little line noise (about -60 dBFS) so silence is not digital zero.
    let mut seed = 0x2545_f491_u32;
    for s in &mut signal {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        *s = s.saturating_add((seed % 61) as i16 - 30);
    }
    (signal, truth)
}

/// The Twilio inbound path: 22.05 kHz -> 8 kHz -> μ-law -> 8 kHz -> 16 kHz -> VAD.
/// Returns detected segments in seconds, with the resamplers' delays taken off.
fn detect_over_telephone<V: Vad>(engine: V, speech: &[i16], cfg: VadConfig) -> Vec<(f64, f64)> {
    let mut down =
        StreamResampler::new(SampleRate::HZ_22050, SampleRate::HZ_8000).expect("supported pair");
    let mut up = StreamResampler::new(SampleRate::HZ_8000, RATE).expect("supported pair");
    let mut det = VoiceDetector::new(engine, cfg);
    let mut phone = Vec::new();
    down.process(speech, &mut phone).expect("resampling works");
    let line: Vec<i16> = phone.iter().map(|&s| ulaw_decode(ulaw_encode(s))).collect();
    let mut wide = Vec::new();
    for frame in line.chunks_exact(160) {
        up.process(frame, &mut wide).expect("resampling works");
    }
    let delay = down.delay().as_secs_f64() + up.delay().as_secs_f64();
    let mut segments = Vec::new();
    let mut open = None;
    for (_, ev) in run(&mut det, &wide) {
        match ev {
            VadEvent::SpeechStarted { at } => open = Some(at.as_duration().as_secs_f64() - delay),
            VadEvent::SpeechEnded { at, .. } => {
                let start = open.take().expect("an end follows a start");
                segments.push((start, at.as_duration().as_secs_f64() - delay));
            }
        }
    }
    segments
}

/// Asserts each detected segment is within `tol_ms` of the truth at both ends; `start_tol`
/// overrides the start tolerance per segment.
fn assert_segments_match(
    engine: &str,
    got: &[(f64, f64)],
    truth: &[(f64, f64)],
    start_tol: &[f64],
) {
    assert_eq!(
        got.len(),
        truth.len(),
        "{engine}: segments {got:?} vs truth {truth:?}"
    );
    for ((g, t), tol) in got.iter().zip(truth).zip(start_tol) {
        let (ds, de) = ((g.0 - t.0) * 1000.0, (g.1 - t.1) * 1000.0);
        assert!(
            ds.abs() <= *tol && de.abs() <= 40.0,
            "{engine}: segment {g:?} vs truth {t:?} (start {ds:+.0} ms, end {de:+.0} ms)"
        );
    }
}

/// The test line's noise floor is about -65 dBFS; the gate sits 10 dB above it so that the
/// quiet unvoiced onset of "thank" (about -50 dBFS after the telephone band) still counts.
fn line_config() -> VadConfig {
    VadConfig {
        min_volume_dbfs: -55.0,
        ..VadConfig::default()
    }
}

#[test]
fn espeak_speech_segments_within_40_ms_with_webrtc() {
    let (speech, truth) = espeak_conversation();
    let webrtc = WebRtcVad::new(RATE, WebRtcVadMode::Aggressive).expect("16 kHz is supported");
    let got = detect_over_telephone(webrtc, &speech, line_config());
    assert_segments_match("webrtc", &got, &truth, &[40.0, 40.0, 40.0]);
}

#[test]
fn espeak_speech_segments_with_earshot() {
    let (speech, truth) = espeak_conversation();
    let got = detect_over_telephone(EarshotVad::new(), &speech, line_config());
    // earshot scores the unvoiced "th" of "thank you" below 0.5 (about 0.28), so that onset
    // is found at the vowel, about 70 ms late; every other edge is within 40 ms.
    assert_segments_match("earshot", &got, &truth, &[40.0, 40.0, 80.0]);
}

#[test]
fn a_short_gap_while_starting_keeps_the_onset() {
    let mut det = VoiceDetector::new(GateOnly, VadConfig::default());
    // 100 ms of sound, a 40 ms closure (under the 60 ms start gap), then sound again.
    let signal = [
        silence(ms(200)),
        tone(ms(100), 8000.0),
        silence(ms(40)),
        tone(ms(300), 8000.0),
        silence(ms(200)),
        tone(ms(100), 8000.0),
        silence(ms(60)), // a full start gap: the start is cancelled
        tone(ms(100), 8000.0),
    ]
    .concat();
    let events: Vec<VadEvent> = run(&mut det, &signal).into_iter().map(|(_, e)| e).collect();
    assert_eq!(
        events,
        vec![VadEvent::SpeechStarted {
            at: Timestamp::new(ms(200) as u64, RATE)
        }]
    );
}

#[test]
fn push_frame_uses_the_frame_timestamp() {
    let cfg = VadConfig {
        start: Duration::from_millis(20),
        ..VadConfig::default()
    };
    let mut det = VoiceDetector::new(GateOnly, cfg);
    let at = Timestamp::new(48_000, RATE);
    let frame = crate::AudioFrame::new(tone(ms(20), 8000.0), at).expect("20 ms frame");
    assert_eq!(
        det.push_frame(&frame),
        Ok(Some(VadEvent::SpeechStarted { at }))
    );
}
