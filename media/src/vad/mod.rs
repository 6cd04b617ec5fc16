//! Voice activity detection: engines behind the [`Vad`] trait, and one state machine
//! ([`VoiceDetector`]) on top that turns per-frame scores into `SpeechStarted` /
//! `SpeechEnded` events with sample-accurate timestamps.

mod detector;
mod earshot;
mod webrtc;

pub use detector::{VadConfig, VadEvent, VadState, VoiceDetector};
pub use earshot::EarshotVad;
pub use webrtc::{WebRtcVad, WebRtcVadMode};

use crate::SampleRate;

/// Errors from a VAD engine.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VadError {
    #[error("{engine} does not accept {samples} samples at {rate}")]
    BadFrame {
        engine: &'static str,
        samples: usize,
        rate: SampleRate,
    },
    #[error("{engine} does not run at {rate}")]
    UnsupportedRate {
        engine: &'static str,
        rate: SampleRate,
    },
}

/// A voice activity engine: scores frames of PCM at its configured rate.
pub trait Vad: Send {
    /// Short name for logs and benchmarks.
    fn name(&self) -> &'static str;
    /// The rate the engine expects.
    fn rate(&self) -> SampleRate;
    /// Probability-like score in `[0, 1]` that `frame` (10, 20 or 30 ms) holds speech.
    fn score(&mut self, frame: &[i16]) -> Result<f32, VadError>;
    /// Forgets all history (a new stream).
    fn reset(&mut self);
    /// Heap bytes this engine holds (for per-call memory accounting).
    fn heap_bytes(&self) -> usize;
}

impl<V: Vad + ?Sized> Vad for Box<V> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn rate(&self) -> SampleRate {
        (**self).rate()
    }
    fn score(&mut self, frame: &[i16]) -> Result<f32, VadError> {
        (**self).score(frame)
    }
    fn reset(&mut self) {
        (**self).reset()
    }
    fn heap_bytes(&self) -> usize {
        (**self).heap_bytes()
    }
}

/// Root-mean-square level of `frame` in dBFS (full scale sine = -3 dBFS; silence = -inf).
pub fn rms_dbfs(frame: &[i16]) -> f32 {
    if frame.is_empty() {
        return f32::NEG_INFINITY;
    }
    let sum: i64 = frame.iter().map(|&s| i64::from(s) * i64::from(s)).sum();
    let rms = (sum as f64 / frame.len() as f64).sqrt();
    (20.0 * (rms / 32768.0).log10()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dbfs_of_known_levels() {
        assert_eq!(rms_dbfs(&[0; 320]), f32::NEG_INFINITY);
        let full: Vec<i16> = (0..320)
            .map(|i| if i % 2 == 0 { 32767 } else { -32767 })
            .collect();
        assert!(rms_dbfs(&full).abs() < 0.01);
        assert!((rms_dbfs(&[3277; 320]) + 20.0).abs() < 0.01);
    }
}
