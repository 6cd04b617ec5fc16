//! From TTS events to the bytes of one output format, chunk by chunk, so a response can stream
//! audio as the provider produces it.
//!
//! | format | bytes | rate |
//! |---|---|---|
//! | `wav` | a 44-byte RIFF header, then s16le | the provider's own rate (of its first chunk) |
//! | `pcm_16000` | raw s16le mono | 16 kHz |
//! | `mulaw_8000` | raw G.711 μ-law | 8 kHz |
//! | `opus` | an Ogg Opus stream (RFC 7845): mono, 16 kHz input, 20 ms packets, one page per chunk | 48 kHz clock |
//!
//! Streaming WAV: the length is not known when the header goes out, so both RIFF and `data`
//! sizes are written as `0xFFFFFFFF` (what ffmpeg does for non-seekable output). Readers that
//! trust the size read to the end of the body; strict ones must take the data to end of file.

use media::codec::g711::{ulaw_decode, ulaw_encode};
use media::codec::opus::OpusEncoder;
use media::{Encoder, ResampleError, SampleRate, StreamResampler};
use serde::{Deserialize, Serialize};

/// What a synthesis request returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AudioFormat {
    Wav,
    #[serde(rename = "mulaw_8000")]
    Mulaw8000,
    #[serde(rename = "pcm_16000")]
    Pcm16000,
    Opus,
}

impl AudioFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Wav => "audio/wav",
            Self::Mulaw8000 => "audio/basic",
            Self::Pcm16000 => "audio/L16;rate=16000;channels=1",
            Self::Opus => "audio/ogg; codecs=opus",
        }
    }

    /// The rate of the output, when it is fixed by the format.
    fn fixed_rate(self) -> Option<SampleRate> {
        match self {
            Self::Wav => None,
            Self::Mulaw8000 => Some(SampleRate::HZ_8000),
            Self::Pcm16000 | Self::Opus => Some(SampleRate::HZ_16000),
        }
    }
}

/// One chunk of provider audio.
#[derive(Debug, Clone, Copy)]
pub enum Audio<'a> {
    Pcm(&'a [i16], SampleRate),
    Mulaw8k(&'a [u8]),
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("resampling: {0}")]
    Resample(#[from] ResampleError),
    #[error("opus: {0}")]
    Codec(#[from] media::CodecError),
}

/// Opus bit rate: wide-band speech is transparent well below this.
const OPUS_BITRATE: i32 = 24_000;
/// libopus's encoder look-ahead (2.5 ms + 4 ms delay compensation) on the 48 kHz Ogg clock, the
/// same at every input rate; players drop this many samples from the start (RFC 7845 §4.2).
const OPUS_PRE_SKIP: u16 = 312;

/// Turns provider audio into one format's bytes. Not `Sync`; one per response.
pub struct AudioEncoder {
    format: AudioFormat,
    rate: Option<SampleRate>,
    converter: Option<RateConverter>,
    opus: Option<OggOpus>,
    started: bool,
    /// Output samples so far (at the output rate), for durations.
    samples_out: u64,
    scratch: Vec<i16>,
}

impl AudioEncoder {
    pub fn new(format: AudioFormat) -> Self {
        Self {
            format,
            rate: format.fixed_rate(),
            converter: None,
            opus: None,
            started: false,
            samples_out: 0,
            scratch: Vec::new(),
        }
    }

    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// The output rate, once known (fixed formats: always; `wav`: after the first chunk).
    pub fn rate(&self) -> Option<SampleRate> {
        self.rate
    }

    /// Audio written so far, in output samples.
    pub fn samples_out(&self) -> u64 {
        self.samples_out
    }

    /// Appends the bytes for `audio` to `out`.
    pub fn push(&mut self, audio: Audio<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        // μ-law straight through when that is what we send: no decode/encode round trip.
        if let (AudioFormat::Mulaw8000, Audio::Mulaw8k(bytes)) = (self.format, audio) {
            self.flush_converter(out)?;
            self.samples_out += bytes.len() as u64;
            out.extend_from_slice(bytes);
            return Ok(());
        }
        let decoded;
        let (samples, from) = match audio {
            Audio::Pcm(s, r) => (s, r),
            Audio::Mulaw8k(b) => {
                decoded = b.iter().map(|&c| ulaw_decode(c)).collect::<Vec<_>>();
                (&decoded[..], SampleRate::HZ_8000)
            }
        };
        let to = *self.rate.get_or_insert(from);
        if self.converter.as_ref().is_some_and(|c| c.from != from) {
            // A provider that changes rate mid-stream: finish the old converter's tail first.
            self.flush_converter(out)?;
        }
        if self.converter.is_none() {
            self.converter = Some(RateConverter::new(from, to)?);
        }
        let mut pcm = std::mem::take(&mut self.scratch);
        pcm.clear();
        self.converter.as_mut().expect("converter was just ensured").process(samples, &mut pcm)?;
        let res = self.emit(&pcm, out);
        self.scratch = pcm;
        res
    }

    /// Writes what is still buffered (resampler tail, the last Opus frame and end of stream).
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.flush_converter(out)?;
        if self.format == AudioFormat::Opus {
            self.header(out);
            self.opus.as_mut().expect("header() creates the Opus writer").finish(out)?;
        } else {
            self.header(out);
        }
        Ok(())
    }

    fn flush_converter(&mut self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if let Some(mut c) = self.converter.take() {
            let mut pcm = Vec::new();
            c.finish(&mut pcm)?;
            self.emit(&pcm, out)?;
        }
        Ok(())
    }

    /// The format's header, once, before any audio (also for an empty utterance).
    fn header(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        match self.format {
            AudioFormat::Wav => {
                let rate = self.rate.unwrap_or(SampleRate::HZ_16000);
                self.rate = Some(rate);
                out.extend_from_slice(&wav_header(rate));
            }
            AudioFormat::Opus => {
                let opus = OggOpus::new().expect("libopus accepts 16 kHz mono VoIP at 24 kbit/s");
                opus.headers(out);
                self.opus = Some(opus);
            }
            AudioFormat::Mulaw8000 | AudioFormat::Pcm16000 => {}
        }
    }

    fn emit(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.header(out);
        self.samples_out += pcm.len() as u64;
        match self.format {
            AudioFormat::Wav | AudioFormat::Pcm16000 => out.extend(pcm.iter().flat_map(|s| s.to_le_bytes())),
            AudioFormat::Mulaw8000 => out.extend(pcm.iter().map(|&s| ulaw_encode(s))),
            AudioFormat::Opus => self.opus.as_mut().expect("header() creates the Opus writer").push(pcm, out)?,
        }
        Ok(())
    }
}

/// A 44-byte header for mono s16le at `rate` with unknown length (see the module docs).
pub fn wav_header(rate: SampleRate) -> [u8; 44] {
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    h[8..16].copy_from_slice(b"WAVEfmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&1u16.to_le_bytes()); // mono
    h[24..28].copy_from_slice(&rate.hz().to_le_bytes());
    h[28..32].copy_from_slice(&(rate.hz() * 2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
    h
}

/// A [`StreamResampler`] with its filter delay removed at the start and its last partial
/// block flushed at the end, so `n` input samples give `round(n * to / from)` output samples,
/// time-aligned with the input.
struct RateConverter {
    from: SampleRate,
    to: SampleRate,
    inner: StreamResampler,
    /// Output samples still to drop (the filter delay).
    skip: usize,
    total_in: u64,
    total_out: u64,
}

impl RateConverter {
    fn new(from: SampleRate, to: SampleRate) -> Result<Self, ResampleError> {
        let inner = StreamResampler::new(from, to)?;
        let skip = inner.delay_samples();
        Ok(Self { from, to, inner, skip, total_in: 0, total_out: 0 })
    }

    fn process(&mut self, input: &[i16], out: &mut Vec<i16>) -> Result<(), ResampleError> {
        self.total_in += input.len() as u64;
        let start = out.len();
        self.inner.process(input, out)?;
        let drop = self.skip.min(out.len() - start);
        out.drain(start..start + drop);
        self.skip -= drop;
        self.total_out += (out.len() - start) as u64;
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<i16>) -> Result<(), ResampleError> {
        let want = (self.total_in * u64::from(self.to.hz()) + u64::from(self.from.hz()) / 2) / u64::from(self.from.hz());
        let silence = vec![0i16; self.from.samples_in_ms(20)];
        // Each block of silence pushes out 20 ms; the delay is well under a second.
        for _ in 0..100 {
            if self.total_out >= want {
                break;
            }
            let start = out.len();
            let before = self.total_in;
            self.process(&silence, out)?;
            self.total_in = before;
            let excess = (self.total_out.saturating_sub(want)) as usize;
            out.truncate(out.len() - excess.min(out.len() - start));
            self.total_out -= excess as u64;
        }
        Ok(())
    }
}

/// An Ogg Opus stream writer: 16 kHz mono in, 20 ms packets, one page per `push`.
struct OggOpus {
    encoder: OpusEncoder,
    frame: Vec<i16>,
    /// Real (not padding) input samples so far, at 16 kHz.
    samples_in: u64,
    packets: u64,
    serial: u32,
    sequence: u32,
    pending: Vec<Vec<u8>>,
}

const OPUS_FRAME: usize = 320;
/// 20 ms on the 48 kHz Ogg Opus clock.
const GRANULE_PER_PACKET: u64 = 960;

impl OggOpus {
    fn new() -> Result<Self, media::CodecError> {
        Ok(Self {
            encoder: OpusEncoder::new(SampleRate::HZ_16000, OPUS_BITRATE)?,
            frame: Vec::with_capacity(OPUS_FRAME),
            samples_in: 0,
            packets: 0,
            serial: rand::random(),
            sequence: 0,
            pending: Vec::new(),
        })
    }

    /// The identification and comment headers, each on its own page (RFC 7845 §3).
    fn headers(&self, out: &mut Vec<u8>) {
        let mut head = Vec::with_capacity(19);
        head.extend_from_slice(b"OpusHead");
        head.push(1); // version
        head.push(1); // channels
        head.extend_from_slice(&OPUS_PRE_SKIP.to_le_bytes());
        head.extend_from_slice(&16_000u32.to_le_bytes()); // input rate, informational
        head.extend_from_slice(&0i16.to_le_bytes()); // output gain
        head.push(0); // mapping family: mono/stereo
        let vendor = b"switchboard";
        let mut tags = Vec::new();
        tags.extend_from_slice(b"OpusTags");
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor);
        tags.extend_from_slice(&0u32.to_le_bytes());
        ogg_page(out, 0x02, 0, self.serial, 0, &[&head]);
        ogg_page(out, 0x00, 0, self.serial, 1, &[&tags]);
    }

    fn push(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), media::CodecError> {
        self.samples_in += pcm.len() as u64;
        for &s in pcm {
            self.frame.push(s);
            if self.frame.len() == OPUS_FRAME {
                self.encode_frame()?;
            }
        }
        self.write_page(out, false);
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), media::CodecError> {
        // The last page must hold a packet to carry the end-trimmed granule: pad the partial
        // frame, or encode one of silence that the granule then trims away.
        if !self.frame.is_empty() || self.pending.is_empty() {
            self.frame.resize(OPUS_FRAME, 0);
            self.encode_frame()?;
        }
        self.write_page(out, true);
        Ok(())
    }

    fn encode_frame(&mut self) -> Result<(), media::CodecError> {
        let mut packet = Vec::with_capacity(128);
        self.encoder.encode(&self.frame, &mut packet)?;
        self.frame.clear();
        self.pending.push(packet);
        self.packets += 1;
        Ok(())
    }

    fn write_page(&mut self, out: &mut Vec<u8>, last: bool) {
        if self.pending.is_empty() && !last {
            return;
        }
        let mut granule = self.packets * GRANULE_PER_PACKET;
        if last {
            // End trimming: the decoder drops everything past the real audio.
            granule = granule.min(u64::from(OPUS_PRE_SKIP) + self.samples_in * 3);
        }
        let packets = std::mem::take(&mut self.pending);
        // Lacing allows 255 segments a page; 20 ms packets are far below 255 bytes, but a page
        // per group keeps any size legal.
        let groups: Vec<&[Vec<u8>]> = packets.chunks(64).collect();
        for (i, group) in groups.iter().enumerate() {
            self.sequence += 1;
            let is_last_group = i + 1 == groups.len();
            let flags = if last && is_last_group { 0x04 } else { 0x00 };
            let refs: Vec<&[u8]> = group.iter().map(Vec::as_slice).collect();
            let page_granule = if is_last_group {
                granule
            } else {
                (self.packets - packets.len() as u64 + ((i + 1) * 64) as u64) * GRANULE_PER_PACKET
            };
            ogg_page(out, flags, page_granule, self.serial, self.sequence, &refs);
        }
    }
}

/// Appends one Ogg page holding whole `packets` (each under 255 * 4 bytes here).
fn ogg_page(out: &mut Vec<u8>, flags: u8, granule: u64, serial: u32, sequence: u32, packets: &[&[u8]]) {
    let start = out.len();
    out.extend_from_slice(b"OggS");
    out.push(0); // version
    out.push(flags);
    out.extend_from_slice(&granule.to_le_bytes());
    out.extend_from_slice(&serial.to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // CRC, filled below
    let mut lacing = Vec::new();
    for p in packets {
        lacing.extend(std::iter::repeat_n(255u8, p.len() / 255));
        lacing.push((p.len() % 255) as u8);
    }
    debug_assert!(lacing.len() <= 255, "callers keep pages within 255 segments");
    out.push(lacing.len() as u8);
    out.extend_from_slice(&lacing);
    for p in packets {
        out.extend_from_slice(p);
    }
    let crc = ogg_crc(&out[start..]);
    out[start + 22..start + 26].copy_from_slice(&crc.to_le_bytes());
}

/// Ogg's CRC-32: polynomial 0x04C11DB7, no reflection, zero initial value and final XOR.
fn ogg_crc(data: &[u8]) -> u32 {
    let mut crc = 0u32;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 { (crc << 1) ^ 0x04C1_1DB7 } else { crc << 1 };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, n: usize) -> Vec<i16> {
        (0..n).map(|i| ((i as f32 * 440.0 * 2.0 * std::f32::consts::PI / rate as f32).sin() * 8000.0) as i16).collect()
    }

    #[test]
    fn resampled_length_is_exact_after_finish() {
        for (from, to, n) in [(22_050u32, 16_000u32, 22_050 + 123), (24_000, 16_000, 5_000), (8_000, 16_000, 77)] {
            let mut enc = AudioEncoder::new(AudioFormat::Pcm16000);
            let input = sine(from, n);
            let mut out = Vec::new();
            for chunk in input.chunks(300) {
                enc.push(Audio::Pcm(chunk, SampleRate::new(from)), &mut out).unwrap();
            }
            enc.finish(&mut out).unwrap();
            let want = (n as u64 * u64::from(to) + u64::from(from) / 2) / u64::from(from);
            assert_eq!(out.len() as u64, want * 2, "{from}->{to} n={n}");
            assert_eq!(enc.samples_out(), want);
        }
    }

    #[test]
    fn wav_takes_the_first_chunk_rate_and_streams_an_open_length_header() {
        let mut enc = AudioEncoder::new(AudioFormat::Wav);
        let mut out = Vec::new();
        enc.push(Audio::Pcm(&[1, 2, 3], SampleRate::HZ_22050), &mut out).unwrap();
        enc.finish(&mut out).unwrap();
        assert_eq!(&out[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(out[24..28].try_into().unwrap()), 22_050);
        assert_eq!(u32::from_le_bytes(out[40..44].try_into().unwrap()), u32::MAX);
        assert_eq!(&out[44..], &[1, 0, 2, 0, 3, 0]);
    }

    #[test]
    fn mulaw_passes_through_and_pcm_is_encoded() {
        let mut enc = AudioEncoder::new(AudioFormat::Mulaw8000);
        let mut out = Vec::new();
        enc.push(Audio::Mulaw8k(&[0x12, 0x34]), &mut out).unwrap();
        enc.push(Audio::Pcm(&[0, 1000], SampleRate::HZ_8000), &mut out).unwrap();
        enc.finish(&mut out).unwrap();
        assert_eq!(out, vec![0x12, 0x34, ulaw_encode(0), ulaw_encode(1000)]);
    }

    #[test]
    fn format_names_match_the_api() {
        let names: Vec<String> = [AudioFormat::Wav, AudioFormat::Mulaw8000, AudioFormat::Pcm16000, AudioFormat::Opus]
            .iter()
            .map(|f| serde_json::to_string(f).unwrap())
            .collect();
        assert_eq!(names, [r#""wav""#, r#""mulaw_8000""#, r#""pcm_16000""#, r#""opus""#]);
    }

    #[test]
    fn ogg_crc_matches_the_reference_value() {
        // The Ogg CRC (non-reflected CRC-32/MPEG-2 polynomial, zero init/xorout) of "123456789".
        assert_eq!(ogg_crc(b"123456789"), 0x89A1_897F);
    }

    #[test]
    fn opus_stream_has_headers_pages_and_a_trimmed_end() {
        let mut enc = AudioEncoder::new(AudioFormat::Opus);
        let mut out = Vec::new();
        let pcm = sine(16_000, 16_000 + 100);
        for chunk in pcm.chunks(500) {
            enc.push(Audio::Pcm(chunk, SampleRate::HZ_16000), &mut out).unwrap();
        }
        enc.finish(&mut out).unwrap();
        let mut pages = Vec::new();
        let mut at = 0;
        while at < out.len() {
            assert_eq!(&out[at..at + 4], b"OggS");
            let nseg = out[at + 26] as usize;
            let body: usize = out[at + 27..at + 27 + nseg].iter().map(|&b| b as usize).sum();
            let len = 27 + nseg + body;
            let mut page = out[at..at + len].to_vec();
            let crc = u32::from_le_bytes(page[22..26].try_into().unwrap());
            page[22..26].copy_from_slice(&[0; 4]);
            assert_eq!(ogg_crc(&page), crc, "page CRC");
            pages.push((out[at + 5], u64::from_le_bytes(out[at + 6..at + 14].try_into().unwrap())));
            at += len;
        }
        assert_eq!(pages[0].0, 0x02, "BOS first");
        assert_eq!(pages.last().unwrap().0, 0x04, "EOS last");
        assert_eq!(pages.last().unwrap().1, 312 + 16_100 * 3, "granule trims the padding");
        assert!(pages.windows(2).all(|w| w[0].1 <= w[1].1), "granules never decrease");
    }
}
