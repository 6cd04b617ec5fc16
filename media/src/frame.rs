//! Audio and encoded frames. A frame is 10, 20 or 30 ms of 16-bit mono PCM at one rate; the
//! pipeline uses 20 ms at 16 kHz (320 samples).

use std::time::Duration;

use crate::{SampleRate, Timestamp};

/// Frame durations the pipeline accepts (the set WebRTC VAD and RTP packetisation agree on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameDuration {
    Ms10,
    Ms20,
    Ms30,
}

impl FrameDuration {
    pub const fn millis(self) -> u32 {
        match self {
            Self::Ms10 => 10,
            Self::Ms20 => 20,
            Self::Ms30 => 30,
        }
    }

    pub const fn duration(self) -> Duration {
        Duration::from_millis(self.millis() as u64)
    }

    /// Samples in one frame of this duration at `rate`.
    pub const fn samples(self, rate: SampleRate) -> usize {
        rate.samples_in_ms(self.millis())
    }

    /// The duration `samples` samples at `rate` make, if it is one of the allowed ones.
    pub fn from_samples(samples: usize, rate: SampleRate) -> Option<Self> {
        [Self::Ms10, Self::Ms20, Self::Ms30]
            .into_iter()
            .find(|d| d.samples(rate) == samples)
    }
}

/// Errors building a frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("{samples} samples at {rate} is not a 10, 20 or 30 ms frame")]
    BadLength { samples: usize, rate: SampleRate },
}

/// One frame of 16-bit mono PCM with its place on the stream's sample clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFrame {
    samples: Vec<i16>,
    timestamp: Timestamp,
    duration: FrameDuration,
}

impl AudioFrame {
    /// A frame over `samples`, which must be 10, 20 or 30 ms long at the timestamp's rate.
    pub fn new(samples: Vec<i16>, timestamp: Timestamp) -> Result<Self, FrameError> {
        let rate = timestamp.rate();
        let duration =
            FrameDuration::from_samples(samples.len(), rate).ok_or(FrameError::BadLength {
                samples: samples.len(),
                rate,
            })?;
        Ok(Self {
            samples,
            timestamp,
            duration,
        })
    }

    /// A silent frame.
    pub fn silence(duration: FrameDuration, timestamp: Timestamp) -> Self {
        Self {
            samples: vec![0; duration.samples(timestamp.rate())],
            timestamp,
            duration,
        }
    }

    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// Mutable samples; the length is fixed, so the frame stays valid.
    pub fn samples_mut(&mut self) -> &mut [i16] {
        &mut self.samples
    }

    pub fn rate(&self) -> SampleRate {
        self.timestamp.rate()
    }

    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }

    pub fn duration(&self) -> FrameDuration {
        self.duration
    }

    /// The timestamp just after the last sample (the next frame's timestamp).
    pub fn end(&self) -> Timestamp {
        self.timestamp.add_samples(self.samples.len() as u64)
    }

    /// Gives the buffer back, so a caller can reuse its allocation.
    pub fn into_samples(self) -> Vec<i16> {
        self.samples
    }
}

/// Codecs the media core speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 μ-law (PCMU), 8 kHz.
    Pcmu,
    /// G.711 A-law (PCMA), 8 kHz.
    Pcma,
    /// Opus, 48 kHz RTP clock.
    Opus,
}

impl Codec {
    /// The RTP clock rate of this codec (Opus always uses 48 kHz on the wire).
    pub const fn clock_rate(self) -> SampleRate {
        match self {
            Self::Pcmu | Self::Pcma => SampleRate::HZ_8000,
            Self::Opus => SampleRate::HZ_48000,
        }
    }
}

/// One encoded frame as it travels on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    pub codec: Codec,
    /// Position on the codec's RTP clock.
    pub timestamp: Timestamp,
    pub payload: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_must_be_10_20_or_30_ms() {
        let ts = Timestamp::zero(SampleRate::HZ_16000);
        let frame = AudioFrame::new(vec![0; 320], ts).expect("320 samples is 20 ms at 16 kHz");
        assert_eq!(frame.duration(), FrameDuration::Ms20);
        assert_eq!(frame.end().samples(), 320);
        assert_eq!(
            AudioFrame::new(vec![0; 300], ts),
            Err(FrameError::BadLength {
                samples: 300,
                rate: SampleRate::HZ_16000
            })
        );
        let eight = AudioFrame::new(vec![0; 240], Timestamp::zero(SampleRate::HZ_8000));
        assert_eq!(eight.map(|f| f.duration()), Ok(FrameDuration::Ms30));
    }
}
