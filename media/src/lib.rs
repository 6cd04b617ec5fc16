//! Sans-IO audio core: codecs, resampling, voice activity detection, jitter buffer, pacing,
//! mixing, WAV. Nothing here reads a clock or touches a socket; time and frames are arguments,
//! so tests run faster than real time. Every per-call object is `Send` (a call actor on a
//! multi-threaded runtime owns them by value) and allocates nothing per frame once warm.
//!
//! The internal pipeline format is 16 kHz mono i16 in 20 ms frames (320 samples), each with a
//! sample-clock [`Timestamp`].
//!
//! | piece | type | notes |
//! |---|---|---|
//! | G.711 μ-law / A-law | [`codec::g711::G711Decoder`], [`codec::g711::G711Encoder`] | table-driven, ITU-T G.711 exact; concealment repeats and fades |
//! | Opus | [`codec::opus::OpusDecoder`], [`codec::opus::OpusEncoder`] | decodes 48 kHz RTP Opus straight to 16 kHz; PLC via `conceal` |
//! | resampling | [`StreamResampler`] | any of 8/16/22.05/24/48 kHz; 20 ms blocks; exact counts; [`StreamResampler::delay`] |
//! | VAD | [`VoiceDetector`] over [`vad::WebRtcVad`] or [`vad::EarshotVad`] | QUIET -> STARTING -> SPEAKING -> STOPPING, volume gate |
//! | jitter buffer | [`JitterBuffer`] | `push(now, seq, ts, payload)`, `pop(now)` until `None` |
//! | pacer | [`Pacer`] | any chunk size in, exact frames out on the caller's clock; marks; `clear` |
//! | mixer | [`Mixer`] | i32 accumulation, one clamp: order-independent |
//! | WAV | [`read_wav`], [`write_wav`], [`wav::WavRecorder`] | 16-bit mono |
//!
//! # Twilio inbound, per 20 ms media message
//!
//! ```
//! use media::codec::g711::{G711Decoder, Law};
//! use media::vad::{WebRtcVad, WebRtcVadMode};
//! use media::{Decoder, SampleRate, StreamResampler, Timestamp, VadConfig, VadEvent, VoiceDetector};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Once per call:
//! let mut decoder = G711Decoder::new(Law::Ulaw);
//! let mut upsample = StreamResampler::new(SampleRate::HZ_8000, SampleRate::HZ_16000)?;
//! let engine = WebRtcVad::new(SampleRate::HZ_16000, WebRtcVadMode::Aggressive)?;
//! let mut vad = VoiceDetector::new(engine, VadConfig::default());
//! let (mut pcm8, mut pcm16) = (Vec::with_capacity(160), Vec::with_capacity(320));
//! let mut at = Timestamp::zero(SampleRate::HZ_16000);
//!
//! // Per media message (160 μ-law bytes, base64-decoded):
//! let payload = [0xFFu8; 160];
//! pcm8.clear();
//! pcm16.clear();
//! decoder.decode(&payload, &mut pcm8)?;
//! upsample.process(&pcm8, &mut pcm16)?; // exactly 320 samples for every 160 in
//! if let Some(event) = vad.push(&pcm16, at)? {
//!     match event {
//!         VadEvent::SpeechStarted { at } => println!("barge-in at {:?}", at.as_duration()),
//!         VadEvent::SpeechEnded { at, duration } => println!("end at {at:?} after {duration:?}"),
//!     }
//! }
//! at = at.add_samples(pcm16.len() as u64);
//! assert!(!vad.is_speaking());
//! # Ok(()) }
//! ```
//!
//! # Outbound: TTS chunks to paced μ-law frames
//!
//! ```
//! use std::time::{Duration, Instant};
//! use media::codec::g711::{G711Encoder, Law};
//! use media::{Encoder, FrameKind, Pacer, PacerConfig, SampleRate, StreamResampler};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut down = StreamResampler::new(SampleRate::HZ_24000, SampleRate::HZ_8000)?;
//! let mut pacer = Pacer::new(PacerConfig::new(SampleRate::HZ_8000));
//! let mut encoder = G711Encoder::new(Law::Ulaw);
//! let mut pcm8 = Vec::new();
//!
//! // A TTS chunk of any length arrives: resample, queue, and mark its end.
//! let tts_chunk = vec![0i16; 1234];
//! down.process(&tts_chunk, &mut pcm8)?;
//! pacer.push(&pcm8)?;
//! pacer.mark("utterance-1");
//!
//! // On every timer tick (the actor's own clock; see `pacer.next_due()`):
//! let now = Instant::now();
//! let mut payload = Vec::with_capacity(160);
//! while let Some(frame) = pacer.poll(now) {
//!     if let FrameKind::Audio { .. } = frame.kind {
//!         payload.clear();
//!         encoder.encode(frame.samples, &mut payload)?; // send as a Twilio `media` message
//!     } // WebRTC would send the silence frames too
//!     for mark in frame.marks {
//!         let _ = mark; // send a Twilio `mark` right after this frame
//!     }
//! }
//! // Barge-in: drop everything queued; these marks will never be played.
//! let cleared = pacer.clear();
//! assert!(cleared.dropped <= Duration::from_millis(40));
//! # Ok(()) }
//! ```

pub mod codec;
mod frame;
pub mod jitter;
pub mod mixer;
pub mod pacer;
mod rate;
pub mod resample;
mod time;
pub mod vad;
pub mod wav;

pub use codec::{CodecError, Decoder, Encoder};
pub use frame::{AudioFrame, Codec, EncodedFrame, FrameDuration, FrameError};
pub use jitter::{JitterBuffer, JitterConfig, JitterStats, Packet, Playout, PushOutcome};
pub use mixer::{Gain, MixInput, Mixer};
pub use pacer::{Cleared, FrameKind, PacedFrame, Pacer, PacerConfig, PacerError};
pub use rate::SampleRate;
pub use resample::{ResampleError, StreamResampler};
pub use time::Timestamp;
pub use vad::{Vad, VadConfig, VadError, VadEvent, VadState, VoiceDetector};
pub use wav::{WavAudio, WavError, read_wav, write_wav};

#[cfg(test)]
mod test_util;

#[cfg(test)]
mod send_check {
    use super::*;

    fn assert_send<T: Send>() {}

    /// A call actor on a multi-threaded runtime owns all of these and may move between threads.
    #[test]
    fn per_call_objects_are_send() {
        assert_send::<codec::g711::G711Decoder>();
        assert_send::<codec::g711::G711Encoder>();
        assert_send::<codec::opus::OpusDecoder>();
        assert_send::<codec::opus::OpusEncoder>();
        assert_send::<Box<dyn Decoder>>();
        assert_send::<Box<dyn Encoder>>();
        assert_send::<StreamResampler>();
        assert_send::<VoiceDetector<vad::WebRtcVad>>();
        assert_send::<VoiceDetector<vad::EarshotVad>>();
        assert_send::<VoiceDetector<Box<dyn Vad>>>();
        assert_send::<JitterBuffer>();
        assert_send::<Pacer>();
        assert_send::<Mixer>();
        assert_send::<wav::WavRecorder<std::io::BufWriter<std::fs::File>>>();
    }
}
