//! Hold audio: a soft, slowly changing two-note chime generated on the fly, so a caller on
//! hold hears that the line is alive without any file to ship or load.

use media::SampleRate;

/// Notes of the loop (Hz) and how long each lasts.
const NOTES: [f32; 4] = [523.25, 659.25, 587.33, 392.0];
const NOTE_MS: u64 = 600;
const AMPLITUDE: f32 = 2500.0;

#[derive(Debug)]
pub struct HoldMusic {
    rate: SampleRate,
    position: u64,
}

impl HoldMusic {
    pub fn new(rate: SampleRate) -> Self {
        Self { rate, position: 0 }
    }

    /// Appends the next `ms` milliseconds of the loop to `out`.
    pub fn render(&mut self, ms: u32, out: &mut Vec<i16>) {
        let hz = self.rate.hz() as u64;
        let note_len = hz * NOTE_MS / 1000;
        for _ in 0..self.rate.samples_in_ms(ms) {
            let in_note = self.position % note_len;
            let note = NOTES[((self.position / note_len) % NOTES.len() as u64) as usize];
            let t = self.position as f32 / hz as f32;
            // A quick attack and a long decay per note: a chime, not a beep.
            let envelope = (in_note as f32 / (hz as f32 * 0.01)).min(1.0)
                * (-(in_note as f32) / (hz as f32 * 0.25)).exp();
            let sample = (2.0 * std::f32::consts::PI * note * t).sin() * envelope * AMPLITUDE;
            out.push(sample as i16);
            self.position += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_audible_continuous_audio() {
        let mut music = HoldMusic::new(SampleRate::HZ_8000);
        let mut out = Vec::new();
        music.render(20, &mut out);
        music.render(980, &mut out);
        assert_eq!(out.len(), 8000);
        let peak = out.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(peak > 1000 && peak <= AMPLITUDE as u16, "peak {peak}");
        // Continuous across calls: no jump at the 20 ms boundary bigger than the waveform allows.
        assert!((i32::from(out[160]) - i32::from(out[159])).abs() < 1000);
    }
}
