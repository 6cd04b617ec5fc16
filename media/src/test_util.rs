//! Signal helpers shared by the unit tests.

/// `len` samples of a sine at `freq` Hz and peak `amp`.
pub fn sine(freq: f64, rate: u32, len: usize, amp: f64) -> Vec<i16> {
    (0..len)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            (amp * (2.0 * std::f64::consts::PI * freq * t).sin()).round() as i16
        })
        .collect()
}

/// Fraction of the signal's power that sits at `freq` (Goertzel, over the longest prefix
/// holding a whole number of cycles, so a pure tone gives ~1.0).
pub fn goertzel_power_ratio(samples: &[i16], rate: u32, freq: f64) -> f64 {
    let period = f64::from(rate) / freq;
    let cycles = (samples.len() as f64 / period).floor();
    let n = (cycles * period).round() as usize;
    let x = &samples[..n.min(samples.len())];
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &s in x {
        let s0 = f64::from(s) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let bin_power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let total: f64 = x.iter().map(|&s| f64::from(s).powi(2)).sum();
    if total == 0.0 {
        return 0.0;
    }
    2.0 * bin_power / (x.len() as f64 * total)
}

#[test]
fn goertzel_finds_the_tone_and_not_another() {
    let tone = sine(1000.0, 8000, 800, 10_000.0);
    assert!(goertzel_power_ratio(&tone, 8000, 1000.0) > 0.999);
    assert!(goertzel_power_ratio(&tone, 8000, 1500.0) < 0.01);
}
