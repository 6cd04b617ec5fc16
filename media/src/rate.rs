//! Sample rates as a type, so a 8 kHz buffer is never fed to a 16 kHz stage by accident.

use std::time::Duration;

/// A sample rate in Hz. The pipeline only uses the telephony and WebRTC rates below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SampleRate(u32);

impl SampleRate {
    pub const HZ_8000: Self = Self(8_000);
    pub const HZ_16000: Self = Self(16_000);
    /// espeak-ng's native output rate.
    pub const HZ_22050: Self = Self(22_050);
    pub const HZ_24000: Self = Self(24_000);
    pub const HZ_48000: Self = Self(48_000);

    /// The internal pipeline rate: everything between decode and encode runs at 16 kHz.
    pub const PIPELINE: Self = Self::HZ_16000;

    pub const fn new(hz: u32) -> Self {
        Self(hz)
    }

    pub const fn hz(self) -> u32 {
        self.0
    }

    /// Samples in `ms` milliseconds at this rate.
    pub const fn samples_in_ms(self, ms: u32) -> usize {
        (self.0 as usize * ms as usize) / 1000
    }

    /// Whole samples in `d` at this rate (rounded down).
    pub fn samples_in(self, d: Duration) -> u64 {
        (d.as_nanos() * u128::from(self.0) / 1_000_000_000) as u64
    }

    /// The duration of `samples` samples at this rate (rounded down to the nanosecond).
    pub const fn duration_of(self, samples: u64) -> Duration {
        let nanos = samples as u128 * 1_000_000_000 / self.0 as u128;
        Duration::from_nanos(nanos as u64)
    }
}

impl std::fmt::Display for SampleRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} Hz", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_and_durations_agree() {
        assert_eq!(SampleRate::HZ_16000.samples_in_ms(20), 320);
        assert_eq!(
            SampleRate::HZ_8000.samples_in(Duration::from_millis(20)),
            160
        );
        assert_eq!(SampleRate::HZ_22050.samples_in_ms(20), 441);
        assert_eq!(
            SampleRate::HZ_48000.duration_of(960),
            Duration::from_millis(20)
        );
    }
}
