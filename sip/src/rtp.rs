//! RTP fixed header (RFC 3550 §5.1): parse and write, no allocation on parse.

use thiserror::Error;

/// RTP payload type (7 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PayloadType(pub u8);

/// Synchronisation source identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ssrc(pub u32);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RtpError {
    #[error("packet too short: {len} bytes, need at least {need}")]
    TooShort { len: usize, need: usize },
    #[error("unsupported RTP version {0} (only version 2 exists)")]
    BadVersion(u8),
    #[error("padding length {pad} exceeds payload length {payload}")]
    BadPadding { pad: usize, payload: usize },
}

/// A parsed RTP packet borrowing its payload from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub marker: bool,
    pub payload_type: PayloadType,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: Ssrc,
    pub payload: &'a [u8],
}

const FIXED_HEADER: usize = 12;

impl<'a> RtpPacket<'a> {
    /// Parses one datagram. CSRC lists and header extensions are skipped, padding removed.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        if buf.len() < FIXED_HEADER {
            return Err(RtpError::TooShort { len: buf.len(), need: FIXED_HEADER });
        }
        let version = buf[0] >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version));
        }
        let has_padding = buf[0] & 0x20 != 0;
        let has_extension = buf[0] & 0x10 != 0;
        let csrc_count = usize::from(buf[0] & 0x0f);
        let mut offset = FIXED_HEADER + 4 * csrc_count;
        if has_extension {
            if buf.len() < offset + 4 {
                return Err(RtpError::TooShort { len: buf.len(), need: offset + 4 });
            }
            let words = usize::from(u16::from_be_bytes([buf[offset + 2], buf[offset + 3]]));
            offset += 4 + 4 * words;
        }
        if buf.len() < offset {
            return Err(RtpError::TooShort { len: buf.len(), need: offset });
        }
        let mut end = buf.len();
        if has_padding {
            let pad = usize::from(buf[end - 1]);
            if pad == 0 || pad > end - offset {
                return Err(RtpError::BadPadding { pad, payload: end - offset });
            }
            end -= pad;
        }
        Ok(Self {
            marker: buf[1] & 0x80 != 0,
            payload_type: PayloadType(buf[1] & 0x7f),
            sequence: u16::from_be_bytes([buf[2], buf[3]]),
            timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            ssrc: Ssrc(u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]])),
            payload: &buf[offset..end],
        })
    }

    /// Appends the packet (fixed header, no CSRCs or extension) to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(0x80);
        out.push(u8::from(self.marker) << 7 | (self.payload_type.0 & 0x7f));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.0.to_be_bytes());
        out.extend_from_slice(self.payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let pkt = RtpPacket {
            marker: true,
            payload_type: PayloadType(111),
            sequence: 65535,
            timestamp: 960_000,
            ssrc: Ssrc(0xdead_beef),
            payload: &[1, 2, 3],
        };
        let mut buf = Vec::new();
        pkt.write(&mut buf);
        assert_eq!(buf.len(), 15);
        assert_eq!(RtpPacket::parse(&buf).unwrap(), pkt);
    }

    #[test]
    fn skips_csrc_extension_and_padding() {
        let mut buf = vec![0x80 | 0x20 | 0x10 | 1, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        buf.extend_from_slice(&[9, 9, 9, 9]); // one CSRC
        buf.extend_from_slice(&[0xbe, 0xde, 0, 1, 7, 7, 7, 7]); // one extension word
        buf.extend_from_slice(&[42, 43]);
        buf.extend_from_slice(&[0, 2]); // two bytes of padding
        let pkt = RtpPacket::parse(&buf).unwrap();
        assert_eq!(pkt.payload, &[42, 43]);
        assert_eq!(pkt.sequence, 1);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(RtpPacket::parse(&[0x80; 4]), Err(RtpError::TooShort { len: 4, need: 12 }));
        assert_eq!(RtpPacket::parse(&[0x40; 12]), Err(RtpError::BadVersion(1)));
        let mut bad_pad = vec![0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        bad_pad.push(9);
        assert!(matches!(RtpPacket::parse(&bad_pad), Err(RtpError::BadPadding { .. })));
    }
}
