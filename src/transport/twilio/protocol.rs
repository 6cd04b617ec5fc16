//! Twilio Media Streams wire messages, both directions, as typed serde enums.
//!
//! Inbound (Twilio -> us) messages are parsed leniently about *extra* fields (Twilio may add
//! some) but strictly about the ones we rely on. Counters (`sequenceNumber`, `chunk`,
//! `timestamp`) arrive as decimal strings; they are parsed into integers here so nothing
//! downstream handles numbers-as-strings. The `payload` stays base64 text until the caller
//! decodes it with [`MediaPayload::decode_into`], which takes a size limit.
//!
//! Outbound (us -> Twilio) `media` runs 50 times a second per call, so besides the serde
//! form there is [`MediaFrameWriter`], which writes the JSON into a reused buffer with the
//! base64 encoded in place and produces exactly the bytes serde would.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

macro_rules! sid_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

sid_type!(
    /// `MZ…`: one media stream. Every outbound message must carry the stream's own sid
    /// (a wrong one is Twilio error 31951).
    StreamSid
);
sid_type!(
    /// `CA…`: one call leg; the handle for REST call control.
    CallSid
);
sid_type!(
    /// `AC…`: the Twilio account.
    AccountSid
);

/// Which audio track a `media` message belongs to. `<Connect><Stream>` only carries `inbound`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Track {
    Inbound,
    Outbound,
}

/// One message from Twilio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Inbound {
    Connected(Connected),
    Start(Start),
    Media(Media),
    Dtmf(Dtmf),
    Mark(Mark),
    Stop(Stop),
}

/// The event names [`Inbound`] knows; anything else is [`ProtocolError::UnknownEvent`].
const KNOWN_EVENTS: [&str; 6] = ["connected", "start", "media", "dtmf", "mark", "stop"];

impl Inbound {
    /// The `streamSid` the message carries (`connected` carries none).
    pub fn stream_sid(&self) -> Option<&StreamSid> {
        match self {
            Inbound::Connected(_) => None,
            Inbound::Start(m) => Some(&m.stream_sid),
            Inbound::Media(m) => Some(&m.stream_sid),
            Inbound::Dtmf(m) => Some(&m.stream_sid),
            Inbound::Mark(m) => Some(&m.stream_sid),
            Inbound::Stop(m) => Some(&m.stream_sid),
        }
    }

    /// The `sequenceNumber` (`connected` carries none).
    pub fn sequence_number(&self) -> Option<u64> {
        match self {
            Inbound::Connected(_) => None,
            Inbound::Start(m) => Some(m.sequence_number),
            Inbound::Media(m) => Some(m.sequence_number),
            Inbound::Dtmf(m) => Some(m.sequence_number),
            Inbound::Mark(m) => Some(m.sequence_number),
            Inbound::Stop(m) => Some(m.sequence_number),
        }
    }
}

/// `{"event":"connected","protocol":"Call","version":"1.0.0"}`: always the first message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connected {
    pub protocol: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Start {
    #[serde(with = "counter")]
    pub sequence_number: u64,
    pub start: StartMeta,
    pub stream_sid: StreamSid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartMeta {
    pub account_sid: AccountSid,
    pub stream_sid: StreamSid,
    pub call_sid: CallSid,
    pub tracks: Vec<Track>,
    pub media_format: MediaFormat,
    /// The `<Parameter name= value=>` pairs from the `<Stream>` TwiML. Ordered, so that
    /// logs and re-serialisation are deterministic.
    #[serde(default)]
    pub custom_parameters: BTreeMap<String, String>,
}

/// Documented as always `{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}`; kept
/// as data so the stream handler can refuse anything else instead of playing noise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaFormat {
    pub encoding: String,
    pub sample_rate: u32,
    pub channels: u16,
}

impl MediaFormat {
    pub fn is_mulaw_8k_mono(&self) -> bool {
        self.encoding == "audio/x-mulaw" && self.sample_rate == 8000 && self.channels == 1
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Media {
    #[serde(with = "counter")]
    pub sequence_number: u64,
    pub media: MediaChunk,
    pub stream_sid: StreamSid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaChunk {
    pub track: Track,
    /// Starts at 1 and increments per chunk of this track.
    #[serde(with = "counter")]
    pub chunk: u64,
    /// Presentation timestamp in milliseconds from the start of the stream.
    #[serde(with = "counter")]
    pub timestamp: u64,
    pub payload: MediaPayload,
}

/// Base64 μ-law, still encoded: decoding is the caller's choice of buffer and limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MediaPayload(pub String);

impl MediaPayload {
    /// Decodes into `out` (cleared first, so one buffer serves a whole call). Refuses
    /// payloads whose decoded size would exceed `max_bytes` before decoding anything, so a
    /// hostile peer can't make us allocate.
    pub fn decode_into(&self, out: &mut Vec<u8>, max_bytes: usize) -> Result<(), ProtocolError> {
        out.clear();
        let encoded = self.0.as_bytes();
        // Exact for padded base64 (the only form the standard engine accepts); computed from
        // the text alone so nothing is allocated for an oversize payload.
        let padding = encoded
            .iter()
            .rev()
            .take(2)
            .take_while(|&&b| b == b'=')
            .count();
        let decoded_len = (encoded.len().div_ceil(4) * 3).saturating_sub(padding);
        if decoded_len > max_bytes {
            return Err(ProtocolError::PayloadTooLarge {
                len: decoded_len,
                max: max_bytes,
            });
        }
        BASE64
            .decode_vec(encoded, out)
            .map_err(|e| ProtocolError::BadBase64(e.to_string()))?;
        if out.len() > max_bytes {
            let len = out.len();
            out.clear();
            return Err(ProtocolError::PayloadTooLarge {
                len,
                max: max_bytes,
            });
        }
        Ok(())
    }

    /// Convenience for tests and cold paths; the hot path reuses a buffer via `decode_into`.
    pub fn decode(&self, max_bytes: usize) -> Result<Vec<u8>, ProtocolError> {
        let mut out = Vec::new();
        self.decode_into(&mut out, max_bytes)?;
        Ok(out)
    }

    pub fn encode(audio: &[u8]) -> Self {
        Self(BASE64.encode(audio))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dtmf {
    pub stream_sid: StreamSid,
    #[serde(with = "counter")]
    pub sequence_number: u64,
    pub dtmf: DtmfDigit,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DtmfDigit {
    /// Documented as always `inbound_track` (note: not the `inbound` of media messages).
    pub track: String,
    /// One of `0-9 * # A-D`.
    pub digit: char,
}

/// An echoed mark: the audio sent before it has finished playing, *or* was cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mark {
    #[serde(with = "counter")]
    pub sequence_number: u64,
    pub stream_sid: StreamSid,
    pub mark: MarkName,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkName {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stop {
    #[serde(with = "counter")]
    pub sequence_number: u64,
    pub stop: StopMeta,
    pub stream_sid: StreamSid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopMeta {
    pub account_sid: AccountSid,
    pub call_sid: CallSid,
}

/// One message to Twilio (bidirectional streams only). Field order matches the docs, and
/// serde writes the `event` tag first, so the output is byte-identical to the documented shapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Outbound {
    Media {
        #[serde(rename = "streamSid")]
        stream_sid: StreamSid,
        media: OutboundMedia,
    },
    Mark {
        #[serde(rename = "streamSid")]
        stream_sid: StreamSid,
        mark: MarkName,
    },
    Clear {
        #[serde(rename = "streamSid")]
        stream_sid: StreamSid,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundMedia {
    pub payload: MediaPayload,
}

impl Outbound {
    pub fn mark(stream_sid: &StreamSid, name: impl Into<String>) -> Self {
        Outbound::Mark {
            stream_sid: stream_sid.clone(),
            mark: MarkName { name: name.into() },
        }
    }

    pub fn clear(stream_sid: &StreamSid) -> Self {
        Outbound::Clear {
            stream_sid: stream_sid.clone(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("serialising plain structs of strings cannot fail")
    }
}

/// Why an inbound text frame could not be used. Each kind maps to a different reaction in
/// the stream handler: `UnknownEvent` is logged and ignored, the others end or flag the stream.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("message has no \"event\" field")]
    MissingEvent,
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
    /// A known event with a missing, mistyped or unparsable field (e.g. a counter that is not
    /// a decimal integer). `path` is where in the message it went wrong.
    #[error("malformed {event:?} message at {path}: {reason}")]
    Malformed {
        event: String,
        path: String,
        reason: String,
    },
    #[error("media payload is not valid base64: {0}")]
    BadBase64(String),
    #[error("media payload too large: {len} bytes, limit {max}")]
    PayloadTooLarge { len: usize, max: usize },
}

/// Parses one inbound text frame. The happy path is a single serde pass; only a failure pays
/// for a second look to say precisely what was wrong.
pub fn parse_inbound(text: &str) -> Result<Inbound, ProtocolError> {
    match serde_json::from_str::<Inbound>(text) {
        Ok(msg) => Ok(msg),
        Err(err) => Err(classify_error(text, err)),
    }
}

fn classify_error(text: &str, err: serde_json::Error) -> ProtocolError {
    use serde_json::error::Category;
    if matches!(
        err.classify(),
        Category::Syntax | Category::Eof | Category::Io
    ) {
        return ProtocolError::NotJson(err.to_string());
    }
    #[derive(Deserialize)]
    struct Peek {
        event: Option<serde_json::Value>,
    }
    let event = match serde_json::from_str::<Peek>(text) {
        // Valid JSON but not an object (e.g. `[1,2]` or `"x"`).
        Err(e) => return ProtocolError::NotJson(e.to_string()),
        Ok(Peek { event: None }) => return ProtocolError::MissingEvent,
        Ok(Peek {
            event: Some(serde_json::Value::String(name)),
        }) => name,
        Ok(Peek { event: Some(other) }) => {
            return ProtocolError::Malformed {
                event: other.to_string(),
                path: "event".to_owned(),
                reason: "event is not a string".to_owned(),
            };
        }
    };
    if !KNOWN_EVENTS.contains(&event.as_str()) {
        return ProtocolError::UnknownEvent(event);
    }
    // Re-run with path tracking to say where it failed; the error path is rare. The message
    // struct is parsed directly (it ignores the `event` key), because the internally tagged
    // enum buffers its content and would hide the path.
    fn locate<T: serde::de::DeserializeOwned>(text: &str) -> Option<(String, String)> {
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize::<_, T>(&mut de)
            .err()
            .map(|e| (e.path().to_string(), e.inner().to_string()))
    }
    let located = match event.as_str() {
        "connected" => locate::<Connected>(text),
        "start" => locate::<Start>(text),
        "media" => locate::<Media>(text),
        "dtmf" => locate::<Dtmf>(text),
        "mark" => locate::<Mark>(text),
        _ => locate::<Stop>(text),
    };
    // `None` cannot happen (same input, same shape), but report the first error rather than panic.
    let (path, reason) = located.unwrap_or_else(|| (".".to_owned(), err.to_string()));
    ProtocolError::Malformed {
        event,
        path,
        reason,
    }
}

/// Writes outbound `media` messages into one reused buffer: the constant prefix (which holds
/// the JSON-escaped stream sid) is rendered once, and each frame's base64 is appended in place.
/// Produces exactly the bytes of `serde_json::to_string(&Outbound::Media { .. })`.
#[derive(Debug, Clone)]
pub struct MediaFrameWriter {
    prefix_len: usize,
    buf: String,
}

impl MediaFrameWriter {
    pub fn new(stream_sid: &StreamSid) -> Self {
        let sid =
            serde_json::to_string(stream_sid.as_str()).expect("serialising a string cannot fail");
        let mut buf = String::with_capacity(64 + sid.len() + 4 * 160 / 3 + 8);
        buf.push_str(r#"{"event":"media","streamSid":"#);
        buf.push_str(&sid);
        buf.push_str(r#","media":{"payload":""#);
        Self {
            prefix_len: buf.len(),
            buf,
        }
    }

    /// The JSON for one `media` message carrying `audio` (raw μ-law). Valid until the next call.
    pub fn write(&mut self, audio: &[u8]) -> &str {
        self.buf.truncate(self.prefix_len);
        BASE64.encode_string(audio, &mut self.buf);
        self.buf.push_str("\"}}");
        &self.buf
    }
}

/// Counters travel as decimal strings; accept numbers too, since a lenient reader costs nothing
/// and some emulators send them. Serialise back as strings, like Twilio.
mod counter {
    use super::*;

    pub fn serialize<S: Serializer>(value: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = u64;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer as a decimal string")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u64, E> {
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(E::custom(format_args!(
                        "invalid counter {v:?}: expected a decimal integer string"
                    )));
                }
                v.parse::<u64>()
                    .map_err(|_| E::custom(format_args!("counter {v:?} is out of range")))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
                Ok(v)
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
                u64::try_from(v).map_err(|_| E::custom(format_args!("counter {v} is negative")))
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    // The documented shapes (PROTOCOLS.md §A 1.2/1.3), with the elided sids filled in.
    const CONNECTED: &str = r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#;
    const START: &str = r#"{"event":"start","sequenceNumber":"1",
 "start":{"accountSid":"AC123","streamSid":"MZ123","callSid":"CA123",
          "tracks":["inbound"],
          "mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},
          "customParameters":{"FirstName":"Jane","LastName":"Doe","RemoteParty":"Bob"}},
 "streamSid":"MZ123"}"#;
    const MEDIA: &str = r#"{"event":"media","sequenceNumber":"4",
 "media":{"track":"inbound","chunk":"2","timestamp":"5","payload":"no+JhoaJjpzS"},
 "streamSid":"MZ123"}"#;
    const DTMF: &str = r#"{"event":"dtmf","streamSid":"MZ123","sequenceNumber":"5",
 "dtmf":{"track":"inbound_track","digit":"1"}}"#;
    const MARK: &str =
        r#"{"event":"mark","sequenceNumber":"4","streamSid":"MZ123","mark":{"name":"my label"}}"#;
    const STOP: &str = r#"{"event":"stop","sequenceNumber":"5",
 "stop":{"accountSid":"AC123","callSid":"CA123"},"streamSid":"MZ123"}"#;

    fn round_trip(text: &str) -> Inbound {
        let msg = parse_inbound(text).expect("documented shape parses");
        let back: Value = serde_json::to_value(&msg).unwrap();
        let orig: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            back, orig,
            "re-serialised message differs from the documented shape"
        );
        msg
    }

    #[test]
    fn connected_round_trips() {
        let Inbound::Connected(c) = round_trip(CONNECTED) else {
            panic!("wrong variant")
        };
        assert_eq!(c.protocol, "Call");
        assert_eq!(c.version, "1.0.0");
    }

    #[test]
    fn start_round_trips_with_parameters() {
        let Inbound::Start(s) = round_trip(START) else {
            panic!("wrong variant")
        };
        assert_eq!(s.sequence_number, 1);
        assert_eq!(s.stream_sid.as_str(), "MZ123");
        assert_eq!(s.start.call_sid.as_str(), "CA123");
        assert_eq!(s.start.account_sid.as_str(), "AC123");
        assert_eq!(s.start.tracks, vec![Track::Inbound]);
        assert!(s.start.media_format.is_mulaw_8k_mono());
        assert_eq!(s.start.custom_parameters["FirstName"], "Jane");
        assert_eq!(s.start.custom_parameters.len(), 3);
    }

    #[test]
    fn start_without_custom_parameters_defaults_to_empty() {
        let mut v: Value = serde_json::from_str(START).unwrap();
        v["start"]
            .as_object_mut()
            .unwrap()
            .remove("customParameters");
        let Inbound::Start(s) = parse_inbound(&v.to_string()).unwrap() else {
            panic!()
        };
        assert!(s.start.custom_parameters.is_empty());
    }

    #[test]
    fn media_round_trips_with_integer_counters() {
        let Inbound::Media(m) = round_trip(MEDIA) else {
            panic!("wrong variant")
        };
        assert_eq!(m.sequence_number, 4);
        assert_eq!(m.media.chunk, 2);
        assert_eq!(m.media.timestamp, 5);
        assert_eq!(m.media.track, Track::Inbound);
        assert_eq!(
            m.media.payload.decode(160).unwrap(),
            BASE64.decode("no+JhoaJjpzS").unwrap()
        );
    }

    #[test]
    fn dtmf_mark_stop_round_trip() {
        let Inbound::Dtmf(d) = round_trip(DTMF) else {
            panic!("wrong variant")
        };
        assert_eq!((d.sequence_number, d.dtmf.digit), (5, '1'));
        let Inbound::Mark(m) = round_trip(MARK) else {
            panic!("wrong variant")
        };
        assert_eq!(m.mark.name, "my label");
        let Inbound::Stop(s) = round_trip(STOP) else {
            panic!("wrong variant")
        };
        assert_eq!(s.stop.call_sid.as_str(), "CA123");
        assert_eq!(s.sequence_number, 5);
    }

    #[test]
    fn counters_accept_numbers_and_reject_garbage() {
        let text = MEDIA.replace(r#""chunk":"2""#, r#""chunk":2"#);
        let Inbound::Media(m) = parse_inbound(&text).unwrap() else {
            panic!()
        };
        assert_eq!(m.media.chunk, 2);

        for bad in [
            r#""chunk":"2a""#,
            r#""chunk":"""#,
            r#""chunk":"-1""#,
            r#""chunk":-1"#,
        ] {
            let text = MEDIA.replace(r#""chunk":"2""#, bad);
            match parse_inbound(&text) {
                Err(ProtocolError::Malformed { event, path, .. }) => {
                    assert_eq!(event, "media");
                    assert_eq!(path, "media.chunk", "for {bad}");
                }
                other => panic!("{bad}: expected Malformed, got {other:?}"),
            }
        }
        let huge = MEDIA.replace(r#""chunk":"2""#, r#""chunk":"99999999999999999999999""#);
        let err = parse_inbound(&huge).unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
    }

    #[test]
    fn unknown_event_is_its_own_error() {
        let err = parse_inbound(r#"{"event":"dance","streamSid":"MZ1"}"#).unwrap_err();
        assert_eq!(err, ProtocolError::UnknownEvent("dance".into()));
    }

    #[test]
    fn not_json_missing_event_and_missing_field_are_distinct() {
        assert!(matches!(
            parse_inbound("{nope"),
            Err(ProtocolError::NotJson(_))
        ));
        assert!(matches!(
            parse_inbound("[1,2]"),
            Err(ProtocolError::NotJson(_))
        ));
        assert_eq!(
            parse_inbound(r#"{"streamSid":"MZ1"}"#),
            Err(ProtocolError::MissingEvent)
        );
        let no_sid = json!({"event":"mark","sequenceNumber":"4","mark":{"name":"x"}});
        match parse_inbound(&no_sid.to_string()) {
            Err(ProtocolError::Malformed { event, reason, .. }) => {
                assert_eq!(event, "mark");
                assert!(reason.contains("streamSid"), "{reason}");
            }
            other => panic!("expected Malformed, got {other:?}"),
        }
        let bad_track = MEDIA.replace(r#""track":"inbound""#, r#""track":"sideways""#);
        assert!(matches!(
            parse_inbound(&bad_track),
            Err(ProtocolError::Malformed { path, .. }) if path == "media.track"
        ));
    }

    #[test]
    fn bad_base64_is_typed() {
        let p = MediaPayload("no+J!!".into());
        assert!(matches!(p.decode(160), Err(ProtocolError::BadBase64(_))));
    }

    #[test]
    fn oversize_payload_is_refused_and_exact_limit_accepted() {
        let audio = vec![0xFFu8; 160];
        let p = MediaPayload::encode(&audio);
        let mut buf = Vec::new();
        p.decode_into(&mut buf, 160).unwrap();
        assert_eq!(buf, audio);
        assert_eq!(
            p.decode_into(&mut buf, 159),
            Err(ProtocolError::PayloadTooLarge { len: 160, max: 159 })
        );
        assert!(buf.is_empty());
        let big = MediaPayload::encode(&vec![0u8; 4000]);
        assert!(matches!(
            big.decode_into(&mut buf, 160),
            Err(ProtocolError::PayloadTooLarge {
                len: 4000,
                max: 160
            })
        ));
    }

    #[test]
    fn outbound_shapes_match_the_docs_exactly() {
        let sid = StreamSid::from("MZ123");
        let media = Outbound::Media {
            stream_sid: sid.clone(),
            media: OutboundMedia {
                payload: MediaPayload("AAEC".into()),
            },
        };
        assert_eq!(
            media.to_json(),
            r#"{"event":"media","streamSid":"MZ123","media":{"payload":"AAEC"}}"#
        );
        assert_eq!(
            Outbound::mark(&sid, "my label").to_json(),
            r#"{"event":"mark","streamSid":"MZ123","mark":{"name":"my label"}}"#
        );
        assert_eq!(
            Outbound::clear(&sid).to_json(),
            r#"{"event":"clear","streamSid":"MZ123"}"#
        );
    }

    #[test]
    fn frame_writer_is_byte_identical_to_serde() {
        // A sid needing escapes proves the prefix is escaped like serde does it.
        for sid in ["MZ0123456789abcdef0123456789abcdef", "MZ\"odd\\sid\u{1}"] {
            let sid = StreamSid::from(sid);
            let mut w = MediaFrameWriter::new(&sid);
            for len in [0usize, 1, 2, 3, 159, 160, 161, 400] {
                let audio: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
                let expected = Outbound::Media {
                    stream_sid: sid.clone(),
                    media: OutboundMedia {
                        payload: MediaPayload::encode(&audio),
                    },
                }
                .to_json();
                assert_eq!(w.write(&audio), expected, "len {len}");
            }
        }
    }
}
