//! Twilio Media Streams: webhook, stream protocol, REST client.

pub mod protocol;
pub mod rest;
pub mod signature;
pub mod twiml;
pub mod stream;
pub mod webhook;
