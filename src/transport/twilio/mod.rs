//! Twilio Media Streams: webhook, stream protocol, REST client.
