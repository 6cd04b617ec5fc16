//! RFC 4733 telephone-event payloads (DTMF over RTP).

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TelephoneEventError {
    #[error("telephone-event payload must be 4 bytes, got {0}")]
    Length(usize),
    #[error("event code {0} is not a DTMF digit")]
    NotDtmf(u8),
}

/// One telephone-event payload. A digit is sent as several packets with the same
/// RTP timestamp; the ones with `end` set close it (and are usually sent three times).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub digit: char,
    pub end: bool,
    pub volume: u8,
    /// Duration so far, in RTP clock units.
    pub duration: u16,
}

const DIGITS: &[u8; 16] = b"0123456789*#ABCD";

impl TelephoneEvent {
    pub fn parse(payload: &[u8]) -> Result<Self, TelephoneEventError> {
        let [code, flags, d0, d1] = payload else {
            return Err(TelephoneEventError::Length(payload.len()));
        };
        let digit = DIGITS.get(usize::from(*code)).ok_or(TelephoneEventError::NotDtmf(*code))?;
        Ok(Self {
            digit: char::from(*digit),
            end: flags & 0x80 != 0,
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([*d0, *d1]),
        })
    }

    pub fn to_bytes(self) -> Option<[u8; 4]> {
        let code = DIGITS.iter().position(|d| char::from(*d) == self.digit)?;
        let [d0, d1] = self.duration.to_be_bytes();
        Some([code as u8, u8::from(self.end) << 7 | (self.volume & 0x3f), d0, d1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_digit_round_trips() {
        for d in DIGITS {
            let ev = TelephoneEvent { digit: char::from(*d), end: true, volume: 10, duration: 800 };
            assert_eq!(TelephoneEvent::parse(&ev.to_bytes().unwrap()).unwrap(), ev);
        }
    }

    #[test]
    fn rejects_bad_payloads() {
        assert_eq!(TelephoneEvent::parse(&[1, 2, 3]), Err(TelephoneEventError::Length(3)));
        assert_eq!(TelephoneEvent::parse(&[16, 0, 0, 0]), Err(TelephoneEventError::NotDtmf(16)));
    }
}
