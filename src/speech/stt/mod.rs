//! Streaming speech-to-text.

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::SpeechError;

/// The audio encodings a provider can accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SttAudioFormat {
    /// G.711 μ-law at 8 kHz, passed straight through from a phone call.
    Mulaw8k,
    /// 16-bit little-endian PCM at 16 kHz (the internal pipeline format).
    Linear16k,
}

/// What the call tells the provider when it opens a stream.
#[derive(Debug, Clone, Default)]
pub struct SttContext {
    /// Call id for logs.
    pub call_id: String,
    /// Language tag such as `en-US`.
    pub language: Option<String>,
    /// Phrases the caller is expected to say (a grammar for offline engines, hints for others).
    pub phrases: Vec<String>,
    /// The format the transport delivers natively; providers that accept it avoid transcoding.
    pub native_format: Option<SttAudioFormat>,
}

/// Input to an open STT stream. Audio timestamps are sample-clock positions of the first sample
/// in the chunk, in samples at the chunk's own rate, counted from the start of the call.
#[derive(Debug, Clone)]
pub enum SttInput {
    Mulaw8k { at_samples: u64, bytes: Vec<u8> },
    Linear16k { at_samples: u64, samples: Vec<i16> },
    /// End of the caller's turn: produce a final transcript for what was heard so far.
    Finalize,
    /// No more audio; finish pending results then close.
    Close,
}

/// Output of an STT stream. Times are seconds from the start of the stream's audio.
#[derive(Debug, Clone, PartialEq)]
pub enum SttEvent {
    Partial { text: String },
    Final { text: String, start: f64, end: f64, confidence: f32 },
    SpeechStarted { at: f64 },
    SpeechEnded { at: f64 },
    Error(SpeechError),
    Closed,
}

/// An open per-call recognition stream.
#[derive(Debug)]
pub struct SttStream {
    /// Bounded; the call actor uses `try_send` and counts what it could not send.
    pub input: mpsc::Sender<SttInput>,
    pub events: mpsc::Receiver<SttEvent>,
    /// The format this stream wants on `input`.
    pub format: SttAudioFormat,
}

#[async_trait]
pub trait SttProvider: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Whether it recognizes free speech (any words), not only the call's expected phrases.
    /// Agents and supervisors are transcribed only by providers that do: a grammar would turn
    /// their words into the nearest flow phrase, a transcript line that was never said.
    fn recognizes_free_speech(&self) -> bool {
        true
    }
    /// Opens a stream for one call. May connect to a network service.
    async fn open(&self, ctx: SttContext) -> Result<SttStream, SpeechError>;
    /// Whether the provider can be used now (keys present, service reachable when known).
    async fn check(&self) -> Result<(), SpeechError>;
}

pub mod deepgram;
pub mod null;
pub mod openai;
pub mod pocketsphinx;
