//! earshot: a small pure-Rust neural VAD (16 kHz, 256-sample frames, weights built in).

use super::{Vad, VadError};
use crate::SampleRate;

const EARSHOT_FRAME: usize = 256;

/// earshot behind the [`Vad`] trait. Pipeline frames (320 samples) do not divide into
/// earshot's 256-sample frames, so samples are gathered in a small buffer; a frame's score is
/// the highest score of the earshot frames that completed inside it (at least one completes
/// in every 20 ms frame; for a 10 ms frame that completes none, the last score carries over).
pub struct EarshotVad {
    detector: Box<::earshot::Detector>,
    pending: [i16; EARSHOT_FRAME],
    filled: usize,
    last: f32,
}

impl std::fmt::Debug for EarshotVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EarshotVad")
            .field("filled", &self.filled)
            .field("last", &self.last)
            .finish()
    }
}

impl Default for EarshotVad {
    fn default() -> Self {
        Self::new()
    }
}

impl EarshotVad {
    pub fn new() -> Self {
        Self {
            detector: ::earshot::Detector::default_boxed(),
            pending: [0; EARSHOT_FRAME],
            filled: 0,
            last: 0.0,
        }
    }
}

impl Vad for EarshotVad {
    fn name(&self) -> &'static str {
        "earshot"
    }

    fn rate(&self) -> SampleRate {
        SampleRate::HZ_16000
    }

    fn score(&mut self, frame: &[i16]) -> Result<f32, VadError> {
        if frame.is_empty() || frame.len() > SampleRate::HZ_16000.samples_in_ms(30) {
            return Err(VadError::BadFrame {
                engine: "earshot",
                samples: frame.len(),
                rate: SampleRate::HZ_16000,
            });
        }
        let mut best: Option<f32> = None;
        let mut rest = frame;
        while !rest.is_empty() {
            let take = (EARSHOT_FRAME - self.filled).min(rest.len());
            self.pending[self.filled..self.filled + take].copy_from_slice(&rest[..take]);
            self.filled += take;
            rest = &rest[take..];
            if self.filled == EARSHOT_FRAME {
                self.filled = 0;
                let s = self.detector.predict_i16(&self.pending);
                best = Some(best.map_or(s, |b: f32| b.max(s)));
            }
        }
        if let Some(s) = best {
            self.last = s;
        }
        Ok(self.last)
    }

    fn reset(&mut self) {
        self.detector.reset();
        self.filled = 0;
        self.last = 0.0;
    }

    fn heap_bytes(&self) -> usize {
        std::mem::size_of::<::earshot::Detector>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_silence_low_and_rejects_bad_frames() {
        let mut vad = EarshotVad::new();
        for _ in 0..20 {
            let s = vad.score(&[0; 320]).expect("320 samples is a valid frame");
            assert!(s < 0.5, "silence scored {s}");
        }
        assert!(vad.score(&[]).is_err());
        assert!(vad.score(&[0; 1000]).is_err());
    }
}
