//! Sans-IO audio core: codecs, resampling, voice activity detection, jitter buffer, pacing,
//! mixing. Nothing here reads a clock or touches a socket; time and frames are arguments.

pub mod codec;
mod frame;
mod rate;
mod time;
pub mod jitter;
pub mod mixer;
pub mod pacer;
pub mod resample;
pub mod vad;
pub mod wav;

pub use codec::{CodecError, Decoder, Encoder};
pub use frame::{AudioFrame, Codec, EncodedFrame, FrameDuration, FrameError};
pub use jitter::{JitterBuffer, JitterConfig, JitterStats, Packet, Playout, PushOutcome};
pub use mixer::{Gain, MixInput, Mixer};
pub use pacer::{Cleared, FrameKind, PacedFrame, Pacer, PacerConfig, PacerError};
pub use rate::SampleRate;
pub use resample::{ResampleError, StreamResampler};
pub use vad::{Vad, VadConfig, VadError, VadEvent, VadState, VoiceDetector};
pub use wav::{WavAudio, WavError, read_wav, write_wav};
pub use time::Timestamp;

#[cfg(test)]
mod test_util;
