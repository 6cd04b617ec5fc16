//! Opus via libopus (the `opus` crate builds libopus 1.6 from source).
//!
//! WebRTC carries Opus on a 48 kHz RTP clock, but libopus decodes any packet at 8, 12, 16, 24
//! or 48 kHz and encodes from those rates too. So the decoder outputs 16 kHz (the pipeline rate)
//! directly and the encoder takes 16 kHz frames: no resampler on the WebRTC path at all.

use ::opus::{Application, Bitrate, Channels};

use super::{CodecError, Decoder, Encoder};
use crate::{Codec, SampleRate};

/// The largest Opus frame (120 ms) at 48 kHz, an upper bound for any decode.
const MAX_FRAME_48K: usize = 5760;

/// Decodes Opus to mono PCM at a rate libopus supports (use 16 kHz for the pipeline).
pub struct OpusDecoder {
    inner: ::opus::Decoder,
    rate: SampleRate,
    /// Reused decode target, so a decode never allocates.
    scratch: Vec<i16>,
    /// Length of the last packet in samples, the natural length of a concealed frame.
    last_frame: usize,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder")
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

impl OpusDecoder {
    pub fn new(rate: SampleRate) -> Result<Self, CodecError> {
        let inner = ::opus::Decoder::new(rate.hz(), Channels::Mono)?;
        let max = MAX_FRAME_48K * rate.hz() as usize / 48_000;
        Ok(Self {
            inner,
            rate,
            scratch: vec![0; max],
            last_frame: rate.samples_in_ms(20),
        })
    }
}

impl Decoder for OpusDecoder {
    fn codec(&self) -> Codec {
        Codec::Opus
    }

    fn output_rate(&self) -> SampleRate {
        self.rate
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        if payload.is_empty() {
            // An empty slice means "lost" to libopus; an empty RTP payload is just nothing.
            return Ok(0);
        }
        let n = self.inner.decode(payload, &mut self.scratch, false)?;
        out.extend_from_slice(&self.scratch[..n]);
        self.last_frame = n;
        Ok(n)
    }

    /// libopus packet-loss concealment: it extrapolates from the decoder state. `samples` must
    /// be a multiple of 2.5 ms; the usual call asks for one 20 ms frame.
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<usize, CodecError> {
        let want = if samples == 0 {
            self.last_frame
        } else {
            samples
        };
        let want = want.min(self.scratch.len());
        let n = self.inner.decode(&[], &mut self.scratch[..want], false)?;
        out.extend_from_slice(&self.scratch[..n]);
        Ok(n)
    }
}

/// Encodes 20 ms mono frames to Opus (VoIP mode, in-band FEC on).
pub struct OpusEncoder {
    inner: ::opus::Encoder,
    rate: SampleRate,
    frame: usize,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

/// Room for one encoded 20 ms frame; libopus recommends 4000 bytes as a safe maximum.
const MAX_PACKET: usize = 4000;

impl OpusEncoder {
    /// An encoder taking 20 ms frames at `rate` (16 kHz for the pipeline) at `bitrate` bit/s.
    pub fn new(rate: SampleRate, bitrate: i32) -> Result<Self, CodecError> {
        let mut inner = ::opus::Encoder::new(rate.hz(), Channels::Mono, Application::Voip)?;
        inner.set_bitrate(Bitrate::Bits(bitrate))?;
        inner.set_inband_fec(true)?;
        Ok(Self {
            inner,
            rate,
            frame: rate.samples_in_ms(20),
        })
    }
}

impl Encoder for OpusEncoder {
    fn codec(&self) -> Codec {
        Codec::Opus
    }

    fn input_rate(&self) -> SampleRate {
        self.rate
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<usize, CodecError> {
        if pcm.len() != self.frame {
            return Err(CodecError::FrameSize {
                codec: Codec::Opus,
                expected: self.frame,
                got: pcm.len(),
            });
        }
        let start = out.len();
        out.resize(start + MAX_PACKET, 0);
        match self.inner.encode(pcm, &mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                Ok(n)
            }
            Err(e) => {
                out.truncate(start);
                Err(e.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{goertzel_power_ratio, sine};

    #[test]
    fn opus_48k_packets_decode_straight_to_16k() {
        // A WebRTC peer encodes at 48 kHz; we decode at 16 kHz.
        let mut enc = OpusEncoder::new(SampleRate::HZ_48000, 32_000).expect("valid settings");
        let mut dec = OpusDecoder::new(SampleRate::HZ_16000).expect("valid settings");
        let tone = sine(440.0, 48_000, 48_000, 10_000.0);
        let mut pcm = Vec::new();
        let mut packet = Vec::new();
        for frame in tone.chunks(960) {
            packet.clear();
            enc.encode(frame, &mut packet).expect("20 ms frames encode");
            assert_eq!(
                dec.decode(&packet, &mut pcm)
                    .expect("our own packet decodes"),
                320
            );
        }
        assert_eq!(pcm.len(), 16_000);
        // Skip the codec's start-up; the rest is a clean 440 Hz tone.
        let ratio = goertzel_power_ratio(&pcm[1600..], 16_000, 440.0);
        assert!(ratio > 0.95, "440 Hz holds {ratio} of the power");
    }

    #[test]
    fn encodes_16k_frames_and_conceals_a_lost_packet() {
        let mut enc = OpusEncoder::new(SampleRate::HZ_16000, 24_000).expect("valid settings");
        let mut dec = OpusDecoder::new(SampleRate::HZ_16000).expect("valid settings");
        let tone = sine(300.0, 16_000, 16_000, 10_000.0);
        let mut pcm = Vec::new();
        let mut packet = Vec::new();
        for (i, frame) in tone.chunks(320).enumerate() {
            packet.clear();
            enc.encode(frame, &mut packet).expect("20 ms frames encode");
            if i == 30 {
                assert_eq!(dec.conceal(320, &mut pcm).expect("PLC works"), 320);
            } else {
                dec.decode(&packet, &mut pcm)
                    .expect("our own packet decodes");
            }
        }
        assert_eq!(pcm.len(), 16_000);
        let lost = &pcm[30 * 320..31 * 320];
        let rms = (lost.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 320.0).sqrt();
        assert!(
            rms > 1000.0,
            "the concealed frame continues the tone (rms {rms})"
        );
        let ratio = goertzel_power_ratio(&pcm[1600..], 16_000, 300.0);
        assert!(ratio > 0.9, "300 Hz holds {ratio} of the power");
    }

    #[test]
    fn rejects_frames_that_are_not_20_ms() {
        let mut enc = OpusEncoder::new(SampleRate::HZ_16000, 24_000).expect("valid settings");
        let err = enc
            .encode(&[0; 100], &mut Vec::new())
            .expect_err("100 samples is not 20 ms");
        assert!(matches!(
            err,
            CodecError::FrameSize {
                expected: 320,
                got: 100,
                ..
            }
        ));
    }
}
