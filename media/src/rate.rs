/// A sample rate in Hz. The pipeline only uses the telephony and WebRTC rates below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SampleRate(u32);

impl SampleRate {
    pub const HZ_8000: Self = Self(8_000);
    pub const HZ_16000: Self = Self(16_000);
    pub const HZ_22050: Self = Self(22_050);
    pub const HZ_24000: Self = Self(24_000);
    pub const HZ_48000: Self = Self(48_000);

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
}
