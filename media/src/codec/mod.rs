//! Codecs behind one pair of traits, so the call actor holds a `Box<dyn Decoder>` chosen by
//! the transport (PCMU for Twilio, Opus for WebRTC, PCMU/PCMA for SIP).

pub mod g711;
pub mod opus;

use crate::{Codec, SampleRate};

/// Errors from encoding or decoding.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("opus: {0}")]
    Opus(#[from] ::opus::Error),
    #[error("{codec:?} frames must be {expected} samples, got {got}")]
    FrameSize {
        codec: Codec,
        expected: usize,
        got: usize,
    },
}

/// Turns PCM at [`Encoder::input_rate`] into payload bytes.
pub trait Encoder: Send {
    fn codec(&self) -> Codec;
    fn input_rate(&self) -> SampleRate;
    /// Encodes `pcm` and appends the payload to `out`. Returns the bytes appended.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<usize, CodecError>;
}

/// Turns payload bytes into PCM at [`Decoder::output_rate`].
pub trait Decoder: Send {
    fn codec(&self) -> Codec;
    fn output_rate(&self) -> SampleRate;
    /// Decodes one packet and appends the PCM to `out`. Returns the samples appended.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError>;
    /// Appends `samples` samples standing in for a lost packet. Returns the samples appended.
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<usize, CodecError>;
}
