//! The WebRTC VAD (libfvad, via `webrtc-vad`): a GMM classifier, about 1-2 µs per frame.

use super::{Vad, VadError};
use crate::SampleRate;

/// How eagerly WebRTC VAD calls a frame non-speech (higher = fewer false positives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebRtcVadMode {
    Quality,
    LowBitrate,
    #[default]
    Aggressive,
    VeryAggressive,
}

/// Owns a libfvad handle so that it can move between threads.
struct FvadHandle(webrtc_vad::Vad);

// SAFETY: `webrtc_vad::Vad` is `!Send` only because it holds a raw pointer. That pointer is a
// heap block allocated by `fvad_new` and owned exclusively by this handle: libfvad keeps all
// of its state there (no globals, no thread-locals, no callbacks; its tables are constants),
// and the block is only reached through `&mut self`. Moving the handle to another thread
// between calls is therefore like moving a `Box`. It is deliberately not `Sync`.
unsafe impl Send for FvadHandle {}

/// WebRTC VAD at 8, 16, 32 or 48 kHz; scores are 0.0 or 1.0.
pub struct WebRtcVad {
    handle: FvadHandle,
    rate: SampleRate,
    mode: WebRtcVadMode,
}

impl std::fmt::Debug for WebRtcVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcVad")
            .field("rate", &self.rate)
            .field("mode", &self.mode)
            .finish()
    }
}

fn fvad_rate(rate: SampleRate) -> Option<webrtc_vad::SampleRate> {
    webrtc_vad::SampleRate::try_from(rate.hz() as i32).ok()
}

fn fvad_mode(mode: WebRtcVadMode) -> webrtc_vad::VadMode {
    match mode {
        WebRtcVadMode::Quality => webrtc_vad::VadMode::Quality,
        WebRtcVadMode::LowBitrate => webrtc_vad::VadMode::LowBitrate,
        WebRtcVadMode::Aggressive => webrtc_vad::VadMode::Aggressive,
        WebRtcVadMode::VeryAggressive => webrtc_vad::VadMode::VeryAggressive,
    }
}

impl WebRtcVad {
    pub fn new(rate: SampleRate, mode: WebRtcVadMode) -> Result<Self, VadError> {
        let fr = fvad_rate(rate).ok_or(VadError::UnsupportedRate {
            engine: "webrtc",
            rate,
        })?;
        let inner = webrtc_vad::Vad::new_with_rate_and_mode(fr, fvad_mode(mode));
        Ok(Self {
            handle: FvadHandle(inner),
            rate,
            mode,
        })
    }
}

impl Vad for WebRtcVad {
    fn name(&self) -> &'static str {
        "webrtc"
    }

    fn rate(&self) -> SampleRate {
        self.rate
    }

    fn score(&mut self, frame: &[i16]) -> Result<f32, VadError> {
        let bad = VadError::BadFrame {
            engine: "webrtc",
            samples: frame.len(),
            rate: self.rate,
        };
        if frame.is_empty() {
            // webrtc-vad indexes frame[0] before checking the length.
            return Err(bad);
        }
        match self.handle.0.is_voice_segment(frame) {
            Ok(true) => Ok(1.0),
            Ok(false) => Ok(0.0),
            Err(()) => Err(bad),
        }
    }

    fn reset(&mut self) {
        // libfvad's reset also forgets rate and mode; set them again.
        self.handle.0.reset();
        if let Some(fr) = fvad_rate(self.rate) {
            self.handle.0.set_sample_rate(fr);
        }
        self.handle.0.set_mode(fvad_mode(self.mode));
    }

    fn heap_bytes(&self) -> usize {
        // sizeof(struct Fvad) (VadInstT plus the rate index) from libfvad's headers, compiled
        // on x86_64: 740 bytes, one malloc per handle.
        740
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn is_send_and_rejects_bad_frames() {
        assert_send::<WebRtcVad>();
        let mut vad = WebRtcVad::new(SampleRate::HZ_16000, WebRtcVadMode::Aggressive)
            .expect("16 kHz is supported");
        assert_eq!(vad.score(&[0; 320]), Ok(0.0));
        assert!(vad.score(&[0; 300]).is_err());
        assert!(vad.score(&[]).is_err());
        vad.reset();
        assert_eq!(
            vad.score(&[0; 160]),
            Ok(0.0),
            "reset keeps 16 kHz (10 ms = 160 samples)"
        );
        assert!(WebRtcVad::new(SampleRate::HZ_24000, WebRtcVadMode::Quality).is_err());
    }

    #[test]
    fn moves_to_another_thread() {
        let mut vad = WebRtcVad::new(SampleRate::HZ_8000, WebRtcVadMode::Quality)
            .expect("8 kHz is supported");
        assert_eq!(vad.score(&[0; 160]), Ok(0.0));
        let handle = std::thread::spawn(move || vad.score(&[0; 160]));
        assert_eq!(handle.join().expect("thread ran"), Ok(0.0));
    }
}
