//! Streaming resampler over rubato's FFT resampler.
//!
//! One instance per stream direction, created once per call. Input arrives in chunks of any
//! length (TTS chunks are arbitrary); the resampler fills a staging block of exactly 20 ms of
//! input, converts each full block to exactly 20 ms of output and appends it to the caller's
//! buffer. So after `n` input samples the output holds exactly `floor(n / block_in) *
//! block_out` samples: no drift, no empty or odd-sized chunks, and no allocation per call once
//! the caller's buffer has grown to its working size.
//!
//! The added delay is the filter delay that rubato reports plus, for input that does not
//! arrive in whole blocks, up to one block of waiting; [`StreamResampler::delay`] reports the
//! first.

use std::time::Duration;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use crate::SampleRate;

/// Errors creating or running a resampler.
#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    #[error("cannot resample {from} to {to}: 20 ms is not a whole number of samples on both sides")]
    UnsupportedRates { from: SampleRate, to: SampleRate },
    #[error("resampler construction: {0}")]
    Construction(#[from] rubato::ResamplerConstructionError),
    #[error("resampling: {0}")]
    Process(#[from] rubato::ResampleError),
}

/// Block length on each side: 20 ms. Every supported pair (8/16/22.05/24/48 kHz) has a whole
/// number of samples in 20 ms, which is what makes fixed-size blocks on both sides possible.
const BLOCK_MS: u32 = 20;

/// A streaming mono resampler from one fixed rate to another.
pub struct StreamResampler {
    from: SampleRate,
    to: SampleRate,
    inner: Option<Fft<f32>>,
    /// Input samples waiting for a full block (len == block_in when full).
    staged: Vec<f32>,
    filled: usize,
    out_block: Vec<f32>,
    block_in: usize,
    block_out: usize,
    delay_samples: usize,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("block_in", &self.block_in)
            .field("block_out", &self.block_out)
            .field("delay_samples", &self.delay_samples)
            .finish_non_exhaustive()
    }
}

impl StreamResampler {
    /// A resampler from `from` to `to`. Equal rates give a pass-through with no delay.
    pub fn new(from: SampleRate, to: SampleRate) -> Result<Self, ResampleError> {
        let block_in = from.samples_in_ms(BLOCK_MS);
        let block_out = to.samples_in_ms(BLOCK_MS);
        let whole = |r: SampleRate| (r.hz() * BLOCK_MS).is_multiple_of(1000);
        if !whole(from) || !whole(to) || block_in == 0 || block_out == 0 {
            return Err(ResampleError::UnsupportedRates { from, to });
        }
        let inner = if from == to {
            None
        } else {
            let fft = Fft::<f32>::new(
                from.hz() as usize,
                to.hz() as usize,
                block_in,
                1,
                FixedSync::Both,
            )?;
            // With both sides fixed rubato may round the chunk to a multiple of its FFT block;
            // 20 ms is such a multiple for every pair we allow, and the check keeps it honest.
            if fft.input_frames_next() != block_in || fft.output_frames_next() != block_out {
                return Err(ResampleError::UnsupportedRates { from, to });
            }
            Some(fft)
        };
        let delay_samples = inner.as_ref().map_or(0, |r| r.output_delay());
        Ok(Self {
            from,
            to,
            inner,
            staged: vec![0.0; block_in],
            filled: 0,
            out_block: vec![0.0; block_out],
            block_in,
            block_out,
            delay_samples,
        })
    }

    pub fn from_rate(&self) -> SampleRate {
        self.from
    }

    pub fn to_rate(&self) -> SampleRate {
        self.to
    }

    /// The filter delay, in output samples: output sample `k` stands for input time
    /// `(k - delay_samples) / to`.
    pub fn delay_samples(&self) -> usize {
        self.delay_samples
    }

    /// The filter delay as time.
    pub fn delay(&self) -> Duration {
        self.to.duration_of(self.delay_samples as u64)
    }

    /// Input samples held back until their block is complete.
    pub fn pending_input(&self) -> usize {
        self.filled
    }

    /// Output samples one call produces per full input block (20 ms).
    pub fn block_out(&self) -> usize {
        self.block_out
    }

    /// Resamples `input` (any length) and appends every output sample that is ready to `out`.
    /// Returns the number of samples appended, always a multiple of [`Self::block_out`].
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) -> Result<usize, ResampleError> {
        let Some(inner) = self.inner.as_mut() else {
            out.extend_from_slice(input);
            return Ok(input.len());
        };
        let mut produced = 0;
        let mut rest = input;
        while !rest.is_empty() {
            let take = (self.block_in - self.filled).min(rest.len());
            for (dst, &src) in self.staged[self.filled..self.filled + take]
                .iter_mut()
                .zip(rest)
            {
                *dst = f32::from(src);
            }
            self.filled += take;
            rest = &rest[take..];
            if self.filled < self.block_in {
                break;
            }
            self.filled = 0;
            let input = InterleavedSlice::new(&self.staged, 1, self.block_in)
                .expect("staging buffer holds exactly one block");
            let mut output = InterleavedSlice::new_mut(&mut self.out_block, 1, self.block_out)
                .expect("output buffer holds exactly one block");
            let (_, written) = inner.process_into_buffer(&input, &mut output, None)?;
            debug_assert_eq!(written, self.block_out, "fixed-size blocks on both sides");
            out.extend(self.out_block[..written].iter().map(|&s| f32_to_i16(s)));
            produced += written;
        }
        Ok(produced)
    }

    /// Forgets buffered input and filter state (e.g. after a barge-in clears the queue).
    pub fn reset(&mut self) {
        self.filled = 0;
        if let Some(inner) = self.inner.as_mut() {
            inner.reset();
        }
    }

    /// Heap bytes of this wrapper's staging buffers. rubato's own state (FFT plans and
    /// buffers) is not included: measure whole-object memory with an allocator instead, as
    /// the `frame` benchmark does.
    pub fn staging_bytes(&self) -> usize {
        self.staged.capacity() * 4 + self.out_block.capacity() * 4
    }
}

#[inline]
fn f32_to_i16(s: f32) -> i16 {
    // `as` saturates and maps NaN to 0, which is exactly the clamp we want.
    s.round() as i16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{goertzel_power_ratio, sine};

    fn check_tone(from: SampleRate, to: SampleRate, freq: f64) {
        let mut rs = StreamResampler::new(from, to).expect("supported pair");
        let input = sine(freq, from.hz(), from.hz() as usize, 10_000.0);
        let mut out = Vec::new();
        // Odd chunk sizes, as TTS delivers them.
        let mut pos = 0;
        for (i, len) in [1usize, 7, 333, 50, 1000, 13].iter().cycle().enumerate() {
            if pos >= input.len() {
                break;
            }
            let end = (pos + len).min(input.len());
            let before = out.len();
            let n = rs
                .process(&input[pos..end], &mut out)
                .expect("resampling works");
            assert_eq!(n, out.len() - before, "chunk {i}");
            assert_eq!(n % rs.block_out(), 0, "only whole blocks come out");
            pos = end;
        }
        // One second in is exactly one second out: 50 blocks.
        assert_eq!(out.len(), to.hz() as usize, "{from} -> {to}");
        let steady = &out[rs.delay_samples() + to.samples_in_ms(20)..];
        let ratio = goertzel_power_ratio(steady, to.hz(), freq);
        assert!(
            ratio > 0.99,
            "{from} -> {to}: {freq} Hz holds {ratio} of the power"
        );
        // The delay is what rubato says: the tone starts after it.
        let head = &out[..rs.delay_samples() / 2];
        assert!(
            head.iter().all(|&s| s.abs() < 600),
            "{from} -> {to}: silence before the delay"
        );
    }

    #[test]
    fn telephony_and_webrtc_paths_keep_the_tone() {
        let r = |hz| SampleRate::new(hz);
        check_tone(r(8000), r(16000), 440.0);
        check_tone(r(16000), r(8000), 440.0);
        check_tone(r(24000), r(8000), 1000.0);
        check_tone(r(48000), r(16000), 440.0);
        check_tone(r(16000), r(48000), 440.0);
        check_tone(r(22050), r(8000), 700.0);
        check_tone(r(22050), r(16000), 700.0);
        check_tone(r(24000), r(16000), 700.0);
        check_tone(r(8000), r(48000), 300.0);
    }

    #[test]
    fn every_pair_of_supported_rates_builds() {
        let rates = [8000, 16000, 24000, 48000].map(SampleRate::new);
        for from in rates {
            for to in rates {
                let rs = StreamResampler::new(from, to).expect("supported pair");
                assert_eq!(rs.block_out(), to.samples_in_ms(20));
            }
        }
    }

    #[test]
    fn output_counts_never_drift() {
        let mut rs = StreamResampler::new(SampleRate::HZ_22050, SampleRate::HZ_8000)
            .expect("supported pair");
        let mut out = Vec::new();
        let mut fed = 0usize;
        let mut produced = 0usize;
        // 10 minutes of 22.05 kHz in 997-sample chunks; 997 and 441 are coprime, so every
        // block boundary falls at every possible place inside a chunk.
        let chunk = vec![0i16; 997];
        while fed < 22_050 * 600 {
            out.clear();
            produced += rs.process(&chunk, &mut out).expect("resampling works");
            fed += chunk.len();
            assert_eq!(produced, fed / 441 * 160);
            assert_eq!(rs.pending_input(), fed % 441);
        }
    }

    #[test]
    fn twilio_frames_come_out_one_for_one() {
        let mut rs = StreamResampler::new(SampleRate::HZ_8000, SampleRate::HZ_16000)
            .expect("supported pair");
        let mut out = Vec::with_capacity(320);
        for _ in 0..10 {
            out.clear();
            assert_eq!(
                rs.process(&[100; 160], &mut out).expect("resampling works"),
                320
            );
        }
        assert!(rs.delay() > Duration::ZERO && rs.delay() <= Duration::from_millis(20));
    }

    #[test]
    fn rejects_rates_without_whole_20ms_blocks() {
        let err = StreamResampler::new(SampleRate::new(44_030), SampleRate::HZ_8000);
        assert!(matches!(err, Err(ResampleError::UnsupportedRates { .. })));
    }
}
