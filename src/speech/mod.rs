//! Speech providers: streaming speech-to-text and text-to-speech behind traits, so a call
//! picks its providers from config and a new provider is one file.
//!
//! Both directions are channel-shaped: the call actor pushes audio or text with `try_send`
//! (it never awaits a provider) and selects on the event receiver beside its other inputs.
//! Opening a stream may do network I/O, so the actor spawns `open` and receives the stream
//! back as a message.

pub mod catalog;
pub mod ffi;
pub mod providers;
pub mod stt;
pub mod tts;

use thiserror::Error;

/// Errors from any speech provider. Messages are meant for logs and API errors: they name the
/// provider and never contain credentials.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SpeechError {
    #[error("{provider}: could not connect: {reason}")]
    Connect { provider: &'static str, reason: String },
    #[error("{provider}: rejected our credentials (HTTP {status})")]
    Unauthorized { provider: &'static str, status: u16 },
    #[error("{provider}: rate limited")]
    RateLimited { provider: &'static str },
    #[error("{provider}: timed out waiting for {what}")]
    Timeout { provider: &'static str, what: &'static str },
    #[error("{provider}: protocol error: {reason}")]
    Protocol { provider: &'static str, reason: String },
    #[error("{provider}: engine error: {reason}")]
    Engine { provider: &'static str, reason: String },
    #[error("{provider}: not configured: {reason}")]
    NotConfigured { provider: &'static str, reason: String },
    #[error("{provider}: stream closed")]
    Closed { provider: &'static str },
}
