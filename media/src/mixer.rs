//! Mixes N inputs with gains into a caller-owned frame (supervisor listen-in, whisper, barge).
//!
//! Every input is scaled in fixed point and summed into an i32 accumulator; the sum is clamped
//! to i16 once at the end. Integer addition is associative, so the result does not depend on
//! the order of the inputs (summing into i16 one input at a time clips differently for each
//! order).

/// A gain in Q12 fixed point (4096 = unity), limited to 0..=8.0 so that one scaled sample
/// fits in 19 bits and thousands of inputs fit the i32 accumulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gain(i32);

const Q: u32 = 12;
const UNITY_Q: i32 = 1 << Q;
const MAX_Q: i32 = 8 << Q;
/// Inputs allowed in one mix: 4096 * (32768 * 8) < 2^31.
pub const MAX_INPUTS: usize = 4096;

impl Gain {
    pub const UNITY: Self = Self(UNITY_Q);
    pub const MUTE: Self = Self(0);

    /// A linear gain, clamped to 0..=8.
    pub fn linear(g: f32) -> Self {
        Self((g * UNITY_Q as f32).round().clamp(0.0, MAX_Q as f32) as i32)
    }

    /// A gain in decibels (clamped to at most +18 dB).
    pub fn db(db: f32) -> Self {
        Self::linear(10f32.powf(db / 20.0))
    }

    pub fn as_linear(self) -> f32 {
        self.0 as f32 / UNITY_Q as f32
    }
}

/// One input to a mix. Shorter inputs are treated as padded with silence.
#[derive(Debug, Clone, Copy)]
pub struct MixInput<'a> {
    pub samples: &'a [i16],
    pub gain: Gain,
}

impl<'a> MixInput<'a> {
    pub fn new(samples: &'a [i16], gain: Gain) -> Self {
        Self { samples, gain }
    }
}

/// Holds the accumulator so a mix never allocates once the frame size is known.
#[derive(Debug, Default)]
pub struct Mixer {
    acc: Vec<i32>,
}

impl Mixer {
    pub fn new(frame_len: usize) -> Self {
        Self {
            acc: vec![0; frame_len],
        }
    }

    /// Writes the mix of `inputs` into `out` (its length is the frame length).
    ///
    /// # Panics
    /// With more than [`MAX_INPUTS`] inputs, where the accumulator could overflow.
    pub fn mix(&mut self, inputs: &[MixInput<'_>], out: &mut [i16]) {
        assert!(
            inputs.len() <= MAX_INPUTS,
            "at most {MAX_INPUTS} inputs per mix"
        );
        self.acc.clear();
        self.acc.resize(out.len(), 0);
        for input in inputs {
            if input.gain == Gain::MUTE {
                continue;
            }
            let g = input.gain.0;
            for (acc, &s) in self.acc.iter_mut().zip(input.samples) {
                *acc += (i32::from(s) * g) >> Q;
            }
        }
        for (o, &a) in out.iter_mut().zip(&self.acc) {
            *o = a.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.acc.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a naive mixer does: add into i16 one input at a time, clipping as it goes.
    fn naive(inputs: &[&[i16]], len: usize) -> Vec<i16> {
        let mut out = vec![0i16; len];
        for input in inputs {
            for (o, &s) in out.iter_mut().zip(input.iter()) {
                *o = o.saturating_add(s);
            }
        }
        out
    }

    #[test]
    fn clipping_does_not_depend_on_input_order() {
        let a = [30_000i16, -30_000, 20_000, 100];
        let b = [10_000i16, -10_000, 20_000, 200];
        let c = [-25_000i16, 25_000, -30_000, 300];
        let orders: [[&[i16]; 3]; 6] = [
            [&a, &b, &c],
            [&a, &c, &b],
            [&b, &a, &c],
            [&b, &c, &a],
            [&c, &a, &b],
            [&c, &b, &a],
        ];
        let mut mixer = Mixer::new(4);
        let mut results = Vec::new();
        let mut naive_results = Vec::new();
        for order in orders {
            let inputs: Vec<MixInput> = order
                .iter()
                .map(|s| MixInput::new(s, Gain::UNITY))
                .collect();
            let mut out = [0i16; 4];
            mixer.mix(&inputs, &mut out);
            results.push(out.to_vec());
            naive_results.push(naive(&order, 4));
        }
        assert!(results.windows(2).all(|w| w[0] == w[1]), "{results:?}");
        // The exact sums are 15000, -15000, 10000, 600: nothing clips in the end.
        assert_eq!(results[0], vec![15_000, -15_000, 10_000, 600]);
        // Summing into i16 as it goes gets it wrong, and differently per order.
        assert!(naive_results.iter().any(|r| r != &results[0]));
        assert!(naive_results.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn clamps_once_and_applies_gains() {
        let loud = [20_000i16; 8];
        let mut mixer = Mixer::new(8);
        let mut out = [0i16; 8];
        mixer.mix(
            &[
                MixInput::new(&loud, Gain::UNITY),
                MixInput::new(&loud, Gain::UNITY),
            ],
            &mut out,
        );
        assert_eq!(out, [i16::MAX; 8]);
        mixer.mix(
            &[
                MixInput::new(&loud, Gain::linear(0.5)),
                MixInput::new(&loud, Gain::MUTE),
            ],
            &mut out,
        );
        assert_eq!(out, [10_000; 8]);
        let minus6 = Gain::db(-6.0).as_linear();
        assert!((minus6 - 0.501).abs() < 0.001, "{minus6}");
        // Short inputs are padded with silence.
        mixer.mix(&[MixInput::new(&loud[..3], Gain::UNITY)], &mut out);
        assert_eq!(out, [20_000, 20_000, 20_000, 0, 0, 0, 0, 0]);
    }
}
