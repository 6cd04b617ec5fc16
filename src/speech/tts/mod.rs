//! Streaming text-to-speech.

use async_trait::async_trait;
use media::SampleRate;
use tokio::sync::mpsc;

use super::SpeechError;

/// The output a call would like: providers that can produce it natively do, others send PCM
/// at their own rate and the call resamples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtsOutputFormat {
    Mulaw8k,
    Pcm16k,
}

#[derive(Debug, Clone, Default)]
pub struct TtsContext {
    pub call_id: String,
    pub voice: Option<String>,
    /// Speaking rate as a multiplier of the voice's normal rate.
    pub speed: Option<f32>,
    pub preferred: Option<TtsOutputFormat>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TtsInput {
    /// More text of the current utterance; may arrive in pieces (sentences from an LLM).
    Text(String),
    /// Synthesize everything buffered now; more text may follow.
    Flush,
    /// End of input: synthesize what is left, then `Done`.
    Finish,
    /// Barge-in: stop producing audio at once and free the provider connection.
    Cancel,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TtsEvent {
    /// Signed 16-bit mono PCM at `rate`.
    Pcm { samples: Vec<i16>, rate: SampleRate },
    /// G.711 μ-law at 8 kHz, ready for a phone call.
    Mulaw8k { bytes: Vec<u8> },
    /// All text given so far has been synthesized and `Finish` was received.
    Done,
    Error(SpeechError),
}

#[derive(Debug)]
pub struct TtsStream {
    pub input: mpsc::Sender<TtsInput>,
    pub events: mpsc::Receiver<TtsEvent>,
}

#[async_trait]
pub trait TtsProvider: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    async fn open(&self, ctx: TtsContext) -> Result<TtsStream, SpeechError>;
    async fn check(&self) -> Result<(), SpeechError>;
}

pub mod elevenlabs;
pub mod espeak;
pub mod fallback;
pub mod null;
pub mod openai;
