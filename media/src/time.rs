//! A sample-clock timestamp: a count of samples since the start of a stream at a known rate.
//! Sample counts are exact where wall-clock durations would round, so events derived from
//! frames (VAD onsets, marks) land on the exact sample.

use std::time::Duration;

use crate::SampleRate;

/// A position on a stream's sample clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp {
    samples: u64,
    rate: SampleRate,
}

impl Timestamp {
    pub const fn new(samples: u64, rate: SampleRate) -> Self {
        Self { samples, rate }
    }

    /// The start of a stream at `rate`.
    pub const fn zero(rate: SampleRate) -> Self {
        Self::new(0, rate)
    }

    pub const fn samples(self) -> u64 {
        self.samples
    }

    pub const fn rate(self) -> SampleRate {
        self.rate
    }

    /// Time since the start of the stream.
    pub const fn as_duration(self) -> Duration {
        self.rate.duration_of(self.samples)
    }

    /// This timestamp moved `samples` later.
    #[must_use]
    pub const fn add_samples(self, samples: u64) -> Self {
        Self::new(self.samples + samples, self.rate)
    }

    /// The same instant on another sample clock (rounded down to a whole sample).
    #[must_use]
    pub const fn convert(self, rate: SampleRate) -> Self {
        let samples = self.samples as u128 * rate.hz() as u128 / self.rate.hz() as u128;
        Self::new(samples as u64, rate)
    }

    /// Time from `earlier` to `self`, or zero if `earlier` is later. Both are compared on
    /// this timestamp's clock.
    pub const fn saturating_since(self, earlier: Timestamp) -> Duration {
        let earlier = earlier.convert(self.rate);
        self.rate
            .duration_of(self.samples.saturating_sub(earlier.samples))
    }
}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timestamp {
    /// Timestamps on different clocks compare by the instant they stand for.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let lhs = u128::from(self.samples) * u128::from(other.rate.hz());
        let rhs = u128::from(other.samples) * u128::from(self.rate.hz());
        lhs.cmp(&rhs).then(self.rate.cmp(&other.rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_between_clocks() {
        let t = Timestamp::new(160, SampleRate::HZ_8000);
        assert_eq!(t.convert(SampleRate::HZ_16000).samples(), 320);
        assert_eq!(t.as_duration(), Duration::from_millis(20));
        let later = Timestamp::new(800, SampleRate::HZ_16000);
        assert_eq!(later.saturating_since(t), Duration::from_millis(30));
        assert_eq!(t.saturating_since(later), Duration::ZERO);
        assert!(t < later);
    }
}
