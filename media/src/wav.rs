//! WAV read and write (16-bit PCM) for tests, tools and call recordings.

use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::SampleRate;

/// Errors reading or writing WAV.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("wav: {0}")]
    Hound(#[from] hound::Error),
    #[error("wav: unsupported format: {0}")]
    Unsupported(String),
}

/// Mono 16-bit audio read from a WAV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WavAudio {
    pub rate: SampleRate,
    pub samples: Vec<i16>,
}

/// Reads a WAV file; several channels are averaged to mono. 8-bit, 24-bit, 32-bit and float
/// input is converted to 16-bit.
pub fn read_wav(path: impl AsRef<Path>) -> Result<WavAudio, WavError> {
    read_wav_from(hound::WavReader::open(path)?)
}

/// [`read_wav`] as a `(samples, rate)` pair, for callers that keep the two apart.
pub fn read_mono(path: impl AsRef<Path>) -> Result<(Vec<i16>, SampleRate), WavError> {
    let audio = read_wav(path)?;
    Ok((audio.samples, audio.rate))
}

/// Like [`read_wav`], from any reader (e.g. bytes in memory).
pub fn read_wav_bytes(reader: impl Read) -> Result<WavAudio, WavError> {
    read_wav_from(hound::WavReader::new(reader)?)
}

fn read_wav_from<R: Read>(reader: hound::WavReader<R>) -> Result<WavAudio, WavError> {
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let interleaved: Vec<i32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, bits @ 1..=32) => {
            let shift = i32::from(bits) - 16;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| if shift >= 0 { v >> shift } else { v << -shift }))
                .collect::<Result<_, _>>()?
        }
        (hound::SampleFormat::Float, 32) => reader
            .into_samples::<f32>()
            .map(|s| s.map(|v| (v * 32767.0).round() as i32))
            .collect::<Result<_, _>>()?,
        (fmt, bits) => return Err(WavError::Unsupported(format!("{fmt:?} {bits}-bit"))),
    };
    let samples = interleaved
        .chunks_exact(channels)
        .map(|frame| {
            let sum: i64 = frame.iter().map(|&v| i64::from(v)).sum();
            (sum / channels as i64).clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16
        })
        .collect();
    Ok(WavAudio {
        rate: SampleRate::new(spec.sample_rate),
        samples,
    })
}

fn mono16(rate: SampleRate) -> hound::WavSpec {
    hound::WavSpec {
        channels: 1,
        sample_rate: rate.hz(),
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

/// Writes mono 16-bit PCM to a WAV file.
pub fn write_wav(
    path: impl AsRef<Path>,
    rate: SampleRate,
    samples: &[i16],
) -> Result<(), WavError> {
    let mut w = WavRecorder::create(path, rate)?;
    w.write(samples)?;
    w.finish()
}

/// A streaming mono 16-bit WAV writer for recordings: append frames as they come, then
/// `finish` to fix up the header.
pub struct WavRecorder<W: Write + Seek> {
    inner: hound::WavWriter<W>,
}

impl WavRecorder<std::io::BufWriter<std::fs::File>> {
    pub fn create(path: impl AsRef<Path>, rate: SampleRate) -> Result<Self, WavError> {
        Ok(Self {
            inner: hound::WavWriter::create(path, mono16(rate))?,
        })
    }
}

impl<W: Write + Seek> WavRecorder<W> {
    /// A recorder over any seekable writer (e.g. a `Cursor<Vec<u8>>`).
    pub fn new(writer: W, rate: SampleRate) -> Result<Self, WavError> {
        Ok(Self {
            inner: hound::WavWriter::new(writer, mono16(rate))?,
        })
    }

    pub fn write(&mut self, samples: &[i16]) -> Result<(), WavError> {
        let mut w = self.inner.get_i16_writer(samples.len() as u32);
        for &s in samples {
            w.write_sample(s);
        }
        w.flush()?;
        Ok(())
    }

    pub fn finish(self) -> Result<(), WavError> {
        Ok(self.inner.finalize()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn round_trips_through_a_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a.wav");
        let samples: Vec<i16> = (0..1000).map(|i| (i * 37 % 2000 - 1000) as i16).collect();
        write_wav(&path, SampleRate::HZ_8000, &samples).expect("write");
        let back = read_wav(&path).expect("read");
        assert_eq!(
            back,
            WavAudio {
                rate: SampleRate::HZ_8000,
                samples: samples.clone()
            }
        );
        assert_eq!(
            read_mono(&path).expect("read"),
            (samples, SampleRate::HZ_8000)
        );
        assert!(read_mono(dir.path().join("missing.wav")).is_err());
    }

    #[test]
    fn stereo_and_24_bit_become_mono_16_bit() {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 48_000,
            bits_per_sample: 24,
            sample_format: hound::SampleFormat::Int,
        };
        let mut buf = Cursor::new(Vec::new());
        {
            let mut w = hound::WavWriter::new(&mut buf, spec).expect("spec is valid");
            for (l, r) in [(256 * 1000, 256 * 3000), (-256 * 100, -256 * 300)] {
                w.write_sample(l).expect("write");
                w.write_sample(r).expect("write");
            }
            w.finalize().expect("finalize");
        }
        let audio = read_wav_bytes(Cursor::new(buf.into_inner())).expect("read");
        assert_eq!(audio.rate, SampleRate::HZ_48000);
        assert_eq!(audio.samples, vec![2000, -200]);
    }

    #[test]
    fn recorder_streams_frames() {
        let mut rec =
            WavRecorder::new(Cursor::new(Vec::new()), SampleRate::HZ_16000).expect("header writes");
        for _ in 0..3 {
            rec.write(&[7; 320]).expect("write");
        }
        rec.finish().expect("finish");
    }
}
