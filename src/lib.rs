//! switchboard: a real-time media server for telephony streams.

pub mod speech;
pub mod transport;
