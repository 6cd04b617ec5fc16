//! Transports: how calls reach the media core.

pub mod twilio;
pub mod webrtc;
