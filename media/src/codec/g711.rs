//! ITU-T G.711 μ-law (PCMU) and A-law (PCMA), table-driven.
//!
//! The tables are computed at compile time from the reference algorithm (the classic Sun
//! `g711.c`, which matches the ITU-T G.711 segment tables): μ-law works on 14-bit linear
//! samples, A-law on 13-bit, so 16-bit input is shifted right by 2 or 3 first, exactly as the
//! reference does. Encoding is one table look-up per sample, decoding another.

use super::{CodecError, Decoder, Encoder};
use crate::{Codec, SampleRate};

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 8159;
const ULAW_SEG_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
const ALAW_SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

const fn segment(value: i32, ends: &[i32; 8]) -> usize {
    let mut seg = 0;
    while seg < 8 {
        if value <= ends[seg] {
            return seg;
        }
        seg += 1;
    }
    8
}

/// Reference μ-law encoding of a 14-bit linear sample.
const fn ulaw_encode14(mut pcm: i32) -> u8 {
    let mask: i32 = if pcm < 0 {
        pcm = -pcm;
        0x7F
    } else {
        0xFF
    };
    if pcm > ULAW_CLIP {
        pcm = ULAW_CLIP;
    }
    pcm += ULAW_BIAS >> 2;
    let seg = segment(pcm, &ULAW_SEG_END);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let uval = ((seg as i32) << 4) | ((pcm >> (seg + 1)) & 0xF);
    (uval ^ mask) as u8
}

/// Reference A-law encoding of a 13-bit linear sample.
const fn alaw_encode13(mut pcm: i32) -> u8 {
    let mask: i32 = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let seg = segment(pcm, &ALAW_SEG_END);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mut aval = (seg as i32) << 4;
    if seg < 2 {
        aval |= (pcm >> 1) & 0xF;
    } else {
        aval |= (pcm >> seg) & 0xF;
    }
    (aval ^ mask) as u8
}

const fn ulaw_decode_ref(code: u8) -> i16 {
    let u = !code as i32;
    let mut t = ((u & 0xF) << 3) + ULAW_BIAS;
    t <<= (u & 0x70) >> 4;
    (if u & 0x80 != 0 {
        ULAW_BIAS - t
    } else {
        t - ULAW_BIAS
    }) as i16
}

const fn alaw_decode_ref(code: u8) -> i16 {
    let a = (code ^ 0x55) as i32;
    let mut t = (a & 0xF) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

/// μ-law code for every 14-bit linear value, indexed by `(sample >> 2) + 8192`.
static ULAW_ENCODE: [u8; 16384] = {
    let mut table = [0u8; 16384];
    let mut i = 0;
    while i < 16384 {
        table[i] = ulaw_encode14(i as i32 - 8192);
        i += 1;
    }
    table
};

/// A-law code for every 13-bit linear value, indexed by `(sample >> 3) + 4096`.
static ALAW_ENCODE: [u8; 8192] = {
    let mut table = [0u8; 8192];
    let mut i = 0;
    while i < 8192 {
        table[i] = alaw_encode13(i as i32 - 4096);
        i += 1;
    }
    table
};

static ULAW_DECODE: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = ulaw_decode_ref(i as u8);
        i += 1;
    }
    table
};

static ALAW_DECODE: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = alaw_decode_ref(i as u8);
        i += 1;
    }
    table
};

/// μ-law byte for one 16-bit sample.
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    ULAW_ENCODE[((sample >> 2) as i32 + 8192) as usize]
}

/// 16-bit sample for one μ-law byte.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[code as usize]
}

/// A-law byte for one 16-bit sample.
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    ALAW_ENCODE[((sample >> 3) as i32 + 4096) as usize]
}

/// 16-bit sample for one A-law byte.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[code as usize]
}

/// The two G.711 companding laws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    Ulaw,
    Alaw,
}

impl Law {
    /// The byte that decodes to (near) zero: what a silent frame is made of.
    pub const fn silence(self) -> u8 {
        match self {
            Self::Ulaw => 0xFF,
            Self::Alaw => 0xD5,
        }
    }

    fn codec(self) -> Codec {
        match self {
            Self::Ulaw => Codec::Pcmu,
            Self::Alaw => Codec::Pcma,
        }
    }
}

/// G.711 encoder (stateless apart from its law). Input is 8 kHz PCM of any length.
#[derive(Debug, Clone, Copy)]
pub struct G711Encoder {
    law: Law,
}

impl G711Encoder {
    pub const fn new(law: Law) -> Self {
        Self { law }
    }
}

impl Encoder for G711Encoder {
    fn codec(&self) -> Codec {
        self.law.codec()
    }

    fn input_rate(&self) -> SampleRate {
        SampleRate::HZ_8000
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<usize, CodecError> {
        match self.law {
            Law::Ulaw => out.extend(pcm.iter().map(|&s| ulaw_encode(s))),
            Law::Alaw => out.extend(pcm.iter().map(|&s| alaw_encode(s))),
        }
        Ok(pcm.len())
    }
}

/// G.711 decoder. Loss concealment repeats the last decoded frame at falling volume (a light
/// version of G.711 Appendix I), then fades to silence, so a lost packet is neither a click
/// nor a hole.
#[derive(Debug, Clone)]
pub struct G711Decoder {
    law: Law,
    /// The last decoded samples, for concealment; capacity is kept between frames.
    history: Vec<i16>,
    /// Consecutive concealed frames, which sets the fade.
    concealed: u32,
}

/// The longest stretch of history kept for concealment (30 ms at 8 kHz).
const HISTORY_MAX: usize = 240;

impl G711Decoder {
    pub fn new(law: Law) -> Self {
        Self {
            law,
            history: Vec::with_capacity(HISTORY_MAX),
            concealed: 0,
        }
    }
}

impl Decoder for G711Decoder {
    fn codec(&self) -> Codec {
        self.law.codec()
    }

    fn output_rate(&self) -> SampleRate {
        SampleRate::HZ_8000
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        let start = out.len();
        match self.law {
            Law::Ulaw => out.extend(payload.iter().map(|&c| ulaw_decode(c))),
            Law::Alaw => out.extend(payload.iter().map(|&c| alaw_decode(c))),
        }
        let tail = &out[start.max(out.len().saturating_sub(HISTORY_MAX))..];
        self.history.clear();
        self.history.extend_from_slice(tail);
        self.concealed = 0;
        Ok(payload.len())
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<usize, CodecError> {
        self.concealed += 1;
        // Full repeat for the first lost frame, then -6 dB per frame, silence after four.
        let shift = (self.concealed - 1).min(15);
        if self.history.is_empty() || self.concealed > 4 {
            out.extend(std::iter::repeat_n(0, samples));
        } else {
            out.extend(
                self.history
                    .iter()
                    .cycle()
                    .take(samples)
                    .map(|&s| s >> shift),
            );
        }
        Ok(samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{goertzel_power_ratio, sine};

    #[test]
    fn ulaw_reference_points() {
        assert_eq!(ulaw_encode(0), 0xFF, "μ-law silence byte");
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
    }

    #[test]
    fn alaw_reference_points() {
        assert_eq!(alaw_encode(0), 0xD5, "A-law silence byte");
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
    }

    #[test]
    fn every_ulaw_code_round_trips() {
        for code in 0..=255u8 {
            let back = ulaw_encode(ulaw_decode(code));
            // 0x7F is "negative zero": it decodes to 0, which encodes as positive zero.
            let want = if code == 0x7F { 0xFF } else { code };
            assert_eq!(back, want, "code {code:#04x}");
        }
    }

    #[test]
    fn every_alaw_code_round_trips() {
        for code in 0..=255u8 {
            assert_eq!(alaw_encode(alaw_decode(code)), code, "code {code:#04x}");
        }
    }

    #[test]
    fn tables_equal_the_reference_for_every_sample() {
        for s in i16::MIN..=i16::MAX {
            assert_eq!(ulaw_encode(s), ulaw_encode14(i32::from(s) >> 2));
            assert_eq!(alaw_encode(s), alaw_encode13(i32::from(s) >> 3));
        }
    }

    #[test]
    fn quantisation_error_stays_within_the_segment_step() {
        for s in i16::MIN..=i16::MAX {
            let s32 = i32::from(s);
            let u = i32::from(ulaw_decode(ulaw_encode(s)));
            let a = i32::from(alaw_decode(alaw_encode(s)));
            // Half a segment step is at most 1/32 of the magnitude (plus the bits the 14- or
            // 13-bit input drops); μ-law also clips above 32124.
            let bound = |x: i32| x.abs() / 32 + 16;
            let clip = (s32.abs() - 32124).max(0);
            assert!((u - s32).abs() <= bound(s32) + clip, "μ {s} -> {u}");
            assert!((a - s32).abs() <= bound(s32), "A {s} -> {a}");
        }
    }

    #[test]
    fn decoded_is_monotonic_in_the_input() {
        let mut prev_u = i16::MIN;
        let mut prev_a = i16::MIN;
        for s in i16::MIN..=i16::MAX {
            let u = ulaw_decode(ulaw_encode(s));
            let a = alaw_decode(alaw_encode(s));
            assert!(u >= prev_u && a >= prev_a, "at {s}");
            prev_u = u;
            prev_a = a;
        }
    }

    #[test]
    fn a_tone_survives_both_laws() {
        let tone = sine(1000.0, 8000, 1600, 12_000.0);
        for law in [Law::Ulaw, Law::Alaw] {
            let mut enc = G711Encoder::new(law);
            let mut dec = G711Decoder::new(law);
            let mut bytes = Vec::new();
            let mut pcm = Vec::new();
            for chunk in tone.chunks(160) {
                bytes.clear();
                enc.encode(chunk, &mut bytes)
                    .expect("G.711 encoding cannot fail");
                dec.decode(&bytes, &mut pcm)
                    .expect("G.711 decoding cannot fail");
            }
            assert_eq!(pcm.len(), tone.len());
            let ratio = goertzel_power_ratio(&pcm, 8000, 1000.0);
            assert!(ratio > 0.99, "{law:?}: 1 kHz holds {ratio} of the power");
        }
    }

    #[test]
    fn concealment_repeats_then_fades_to_silence() {
        let mut dec = G711Decoder::new(Law::Ulaw);
        let mut pcm = Vec::new();
        let tone = sine(500.0, 8000, 160, 8000.0);
        let bytes: Vec<u8> = tone.iter().map(|&s| ulaw_encode(s)).collect();
        dec.decode(&bytes, &mut pcm)
            .expect("G.711 decoding cannot fail");
        let energy = |s: &[i16]| s.iter().map(|&x| i64::from(x).pow(2)).sum::<i64>();
        let mut frames = Vec::new();
        for _ in 0..5 {
            let mut f = Vec::new();
            dec.conceal(160, &mut f).expect("concealment cannot fail");
            assert_eq!(f.len(), 160);
            frames.push(energy(&f));
        }
        assert!(frames[0] > 0 && frames[0] > frames[1] && frames[1] > frames[2]);
        assert_eq!(frames[4], 0);
    }
}
