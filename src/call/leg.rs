//! The seam between a call actor and its transport. A transport (Twilio Media Streams now,
//! WebRTC next) runs a reader that turns wire messages into [`LegIn`] and a writer that turns
//! [`LegOut`] into wire messages; the actor never sees the wire.

/// The audio format a transport exchanges with the actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegFormat {
    /// G.711 μ-law at 8 kHz both ways (Twilio). Bot audio is sent only while there is some.
    Mulaw8k,
    /// 16-bit PCM at 16 kHz both ways (WebRTC, after Opus decoding). A frame goes out every
    /// 20 ms, silence when the bot is quiet, because a media track must never have gaps.
    Pcm16k,
}

impl LegFormat {
    pub fn rate(self) -> media::SampleRate {
        match self {
            Self::Mulaw8k => media::SampleRate::HZ_8000,
            Self::Pcm16k => media::SampleRate::HZ_16000,
        }
    }
}

/// From the caller's side to the actor.
#[derive(Debug)]
pub enum LegIn {
    /// Caller audio as G.711 μ-law at 8 kHz (any length; Twilio sends 20 ms).
    Mulaw8k(Vec<u8>),
    /// Caller audio as 16 kHz PCM (any length).
    Pcm16k(Vec<i16>),
    Dtmf(char),
    /// A mark we sent came back.
    Mark(String),
    /// The transport says the call (or stream) ended normally.
    Stop,
    /// Something on the wire was wrong but the stream goes on.
    Warning(String),
    /// The peer broke the protocol; the call cannot continue.
    Failed(String),
    /// The connection went away without an orderly end.
    Disconnected,
}

/// From the actor to the caller's side.
#[derive(Debug, PartialEq)]
pub enum LegOut {
    /// 20 ms of μ-law at 8 kHz.
    Mulaw8k(Vec<u8>),
    /// 20 ms of 16 kHz PCM (silence included on continuous legs).
    Pcm16k(Vec<i16>),
    Mark(String),
    /// Drop everything buffered for playout (barge-in).
    Clear,
    /// Close the transport with a reason.
    Close { reason: String },
}
