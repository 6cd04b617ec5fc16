//! The Twilio side of Media Streams on the wire (PROTOCOLS.md §A): what Twilio sends (built as
//! JSON text here, with `sequenceNumber`, `chunk` and `timestamp` as strings) and what the server
//! may send back (`media`, `mark`, `clear`), parsed into a typed enum.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

/// 20 ms of 8 kHz μ-law.
pub const FRAME_BYTES: usize = 160;
/// μ-law for a zero sample: what a quiet phone line carries.
pub const ULAW_SILENCE: u8 = 0xFF;

/// Identity of one simulated call.
#[derive(Debug, Clone)]
pub struct Sids {
    pub account: String,
    pub call: String,
    pub stream: String,
}

impl Sids {
    pub fn for_call(run: u32, index: usize) -> Self {
        Self {
            account: format!("AC{:032x}", 0x10ad),
            call: format!("CA{run:016x}{index:016x}"),
            stream: format!("MZ{run:016x}{index:016x}"),
        }
    }
}

#[derive(Serialize)]
struct MediaFormat {
    encoding: &'static str,
    #[serde(rename = "sampleRate")]
    sample_rate: u32,
    channels: u32,
}

#[derive(Serialize)]
struct StartBody<'a> {
    #[serde(rename = "accountSid")]
    account_sid: &'a str,
    #[serde(rename = "streamSid")]
    stream_sid: &'a str,
    #[serde(rename = "callSid")]
    call_sid: &'a str,
    tracks: [&'static str; 1],
    #[serde(rename = "mediaFormat")]
    media_format: MediaFormat,
    #[serde(rename = "customParameters")]
    custom_parameters: &'a serde_json::Map<String, serde_json::Value>,
}

/// The caller -> server messages that are not per-frame (those are formatted by [`media`]).
#[derive(Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum TwilioEvent<'a> {
    Connected {
        protocol: &'static str,
        version: &'static str,
    },
    Start {
        #[serde(rename = "sequenceNumber")]
        sequence_number: String,
        start: StartBody<'a>,
        #[serde(rename = "streamSid")]
        stream_sid: &'a str,
    },
    Dtmf {
        #[serde(rename = "streamSid")]
        stream_sid: &'a str,
        #[serde(rename = "sequenceNumber")]
        sequence_number: String,
        dtmf: Dtmf,
    },
    Mark {
        #[serde(rename = "sequenceNumber")]
        sequence_number: String,
        #[serde(rename = "streamSid")]
        stream_sid: &'a str,
        mark: MarkName<'a>,
    },
    Stop {
        #[serde(rename = "sequenceNumber")]
        sequence_number: String,
        stop: StopBody<'a>,
        #[serde(rename = "streamSid")]
        stream_sid: &'a str,
    },
}

#[derive(Serialize)]
struct Dtmf {
    track: &'static str,
    digit: String,
}

#[derive(Serialize, Deserialize)]
struct MarkName<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct StopBody<'a> {
    #[serde(rename = "accountSid")]
    account_sid: &'a str,
    #[serde(rename = "callSid")]
    call_sid: &'a str,
}

fn to_text(ev: &TwilioEvent<'_>) -> String {
    serde_json::to_string(ev)
        .expect("these structs hold only strings and numbers, which always serialize")
}

pub fn connected() -> String {
    to_text(&TwilioEvent::Connected {
        protocol: "Call",
        version: "1.0.0",
    })
}

pub fn start(sids: &Sids, seq: u64, params: &serde_json::Map<String, serde_json::Value>) -> String {
    to_text(&TwilioEvent::Start {
        sequence_number: seq.to_string(),
        start: StartBody {
            account_sid: &sids.account,
            stream_sid: &sids.stream,
            call_sid: &sids.call,
            tracks: ["inbound"],
            media_format: MediaFormat {
                encoding: "audio/x-mulaw",
                sample_rate: 8000,
                channels: 1,
            },
            custom_parameters: params,
        },
        stream_sid: &sids.stream,
    })
}

/// One inbound `media` frame. `payload` is already base64 (frames are encoded once per run,
/// not per call), so this is a plain format on the hot path.
pub fn media(sids: &Sids, seq: u64, chunk: u64, timestamp_ms: u64, payload: &str) -> String {
    format!(
        r#"{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"inbound","chunk":"{chunk}","timestamp":"{timestamp_ms}","payload":"{payload}"}},"streamSid":"{}"}}"#,
        sids.stream
    )
}

pub fn dtmf(sids: &Sids, seq: u64, digit: char) -> String {
    to_text(&TwilioEvent::Dtmf {
        stream_sid: &sids.stream,
        sequence_number: seq.to_string(),
        dtmf: Dtmf {
            track: "inbound_track",
            digit: digit.to_string(),
        },
    })
}

pub fn mark(sids: &Sids, seq: u64, name: &str) -> String {
    to_text(&TwilioEvent::Mark {
        sequence_number: seq.to_string(),
        stream_sid: &sids.stream,
        mark: MarkName { name },
    })
}

pub fn stop(sids: &Sids, seq: u64) -> String {
    to_text(&TwilioEvent::Stop {
        sequence_number: seq.to_string(),
        stop: StopBody {
            account_sid: &sids.account,
            call_sid: &sids.call,
        },
        stream_sid: &sids.stream,
    })
}

/// What the server sends on a bidirectional stream (PROTOCOLS.md §A 1.3).
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "lowercase", deny_unknown_fields)]
pub enum ServerMessage {
    Media {
        #[serde(rename = "streamSid")]
        stream_sid: String,
        media: MediaBody,
    },
    Mark {
        #[serde(rename = "streamSid")]
        stream_sid: String,
        mark: ServerMark,
    },
    Clear {
        #[serde(rename = "streamSid")]
        stream_sid: String,
    },
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MediaBody {
    pub payload: String,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerMark {
    pub name: String,
}

/// A server message checked the way Twilio checks it: the right stream and valid base64.
#[derive(Debug, PartialEq)]
pub enum Checked {
    /// Audio of this many μ-law bytes.
    Media(usize),
    Mark(String),
    Clear,
}

impl ServerMessage {
    fn stream_sid(&self) -> &str {
        match self {
            Self::Media { stream_sid, .. }
            | Self::Mark { stream_sid, .. }
            | Self::Clear { stream_sid } => stream_sid,
        }
    }
}

/// Parses and checks one text frame; the error is what Twilio would report (31951).
pub fn parse_server(text: &str, sids: &Sids) -> Result<Checked, String> {
    let msg: ServerMessage =
        serde_json::from_str(text).map_err(|e| format!("invalid message: {e}"))?;
    if msg.stream_sid() != sids.stream {
        return Err(format!("wrong streamSid {}", msg.stream_sid()));
    }
    Ok(match msg {
        ServerMessage::Media { media, .. } => {
            let bytes = BASE64
                .decode(media.payload.as_bytes())
                .map_err(|e| format!("bad base64 payload: {e}"))?;
            Checked::Media(bytes.len())
        }
        ServerMessage::Mark { mark, .. } => Checked::Mark(mark.name),
        ServerMessage::Clear { .. } => Checked::Clear,
    })
}

/// Base64 of `audio` cut into 20 ms frames (the last one padded with silence).
pub fn encode_frames(audio: &[u8]) -> Vec<String> {
    audio
        .chunks(FRAME_BYTES)
        .map(|chunk| {
            let mut frame = chunk.to_vec();
            frame.resize(FRAME_BYTES, ULAW_SILENCE);
            BASE64.encode(frame)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sids() -> Sids {
        Sids::for_call(1, 2)
    }

    #[test]
    fn caller_messages_have_twilio_shapes() {
        let s = sids();
        let mut params = serde_json::Map::new();
        params.insert("flow".into(), "loadtest".into());
        let start: serde_json::Value = serde_json::from_str(&start(&s, 1, &params)).unwrap();
        assert_eq!(start["event"], "start");
        assert_eq!(start["sequenceNumber"], "1");
        assert_eq!(start["start"]["mediaFormat"]["sampleRate"], 8000);
        assert_eq!(start["start"]["customParameters"]["flow"], "loadtest");
        assert_eq!(start["streamSid"], s.stream.as_str());

        let media: serde_json::Value = serde_json::from_str(&media(&s, 7, 6, 100, "/w==")).unwrap();
        assert_eq!(media["sequenceNumber"], "7");
        assert_eq!(media["media"]["chunk"], "6");
        assert_eq!(media["media"]["timestamp"], "100");
        assert_eq!(media["media"]["payload"], "/w==");

        let dtmf: serde_json::Value = serde_json::from_str(&dtmf(&s, 9, '5')).unwrap();
        assert_eq!(dtmf["dtmf"]["track"], "inbound_track");
        assert_eq!(dtmf["dtmf"]["digit"], "5");
        let stop: serde_json::Value = serde_json::from_str(&stop(&s, 10)).unwrap();
        assert_eq!(stop["stop"]["callSid"], s.call.as_str());
    }

    #[test]
    fn server_messages_are_checked() {
        let s = sids();
        let ok = format!(
            r#"{{"event":"media","streamSid":"{}","media":{{"payload":"/////w=="}}}}"#,
            s.stream
        );
        assert_eq!(parse_server(&ok, &s), Ok(Checked::Media(4)));
        let mark = format!(
            r#"{{"event":"mark","streamSid":"{}","mark":{{"name":"u1-3"}}}}"#,
            s.stream
        );
        assert_eq!(parse_server(&mark, &s), Ok(Checked::Mark("u1-3".into())));
        let wrong = r#"{"event":"clear","streamSid":"MZother"}"#;
        assert!(
            parse_server(wrong, &s)
                .unwrap_err()
                .contains("wrong streamSid")
        );
        let extra = format!(
            r#"{{"event":"clear","streamSid":"{}","track":"x"}}"#,
            s.stream
        );
        assert!(parse_server(&extra, &s).is_err());
        let bad = format!(
            r#"{{"event":"media","streamSid":"{}","media":{{"payload":"%%"}}}}"#,
            s.stream
        );
        assert!(parse_server(&bad, &s).unwrap_err().contains("base64"));
    }

    #[test]
    fn frames_are_padded_to_20_ms() {
        let frames = encode_frames(&[0u8; 200]);
        assert_eq!(frames.len(), 2);
        let last = BASE64.decode(&frames[1]).unwrap();
        assert_eq!(last.len(), FRAME_BYTES);
        assert_eq!(last[40], ULAW_SILENCE);
    }
}
