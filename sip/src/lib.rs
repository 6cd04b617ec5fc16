//! Sans-IO SIP, SDP and RTP for switchboard.
//!
//! SIP trunks are planned; this crate starts with the RTP pieces every transport shares:
//! the fixed RTP header (RFC 3550 §5.1) and RFC 4733 telephone-events (DTMF).
//! Nothing here opens a socket or reads a clock.

pub mod rtp;
pub mod telephone_event;
