//! Deepgram live messages (PROTOCOLS.md §B) and the assembly of results into utterances.

use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;

use super::PROVIDER;
use crate::speech::SpeechError;
use crate::speech::stt::SttEvent;

/// Client control messages; always sent as text frames.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(tag = "type")]
pub(crate) enum Control {
    KeepAlive,
    Finalize,
    CloseStream,
}

impl Control {
    pub(super) fn to_message(self) -> Message {
        let json = serde_json::to_string(&self).expect("a unit enum always serializes");
        Message::text(json)
    }
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "type")]
pub(crate) enum ServerMessage {
    Results(ResultsMsg),
    UtteranceEnd(UtteranceEndMsg),
    SpeechStarted(SpeechStartedMsg),
    Metadata(MetadataMsg),
    Error(ErrorMsg),
    /// Message types added after this code was written; logged and ignored.
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Deserialize, PartialEq)]
pub(crate) struct ResultsMsg {
    pub start: f64,
    pub duration: f64,
    #[serde(default)]
    pub is_final: bool,
    #[serde(default)]
    pub speech_final: bool,
    #[serde(default)]
    pub from_finalize: bool,
    pub channel: ResultsChannel,
}

#[derive(Debug, Deserialize, PartialEq)]
pub(crate) struct ResultsChannel {
    pub alternatives: Vec<Alternative>,
}

#[derive(Debug, Deserialize, PartialEq)]
pub(crate) struct Alternative {
    pub transcript: String,
    #[serde(default)]
    pub confidence: f32,
}

#[derive(Debug, Deserialize, PartialEq)]
pub(crate) struct UtteranceEndMsg {
    pub last_word_end: f64,
}

#[derive(Debug, Deserialize, PartialEq)]
pub(crate) struct SpeechStartedMsg {
    pub timestamp: f64,
}

#[derive(Debug, Deserialize, PartialEq)]
pub(crate) struct MetadataMsg {
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub duration: Option<f64>,
}

#[derive(Debug, Deserialize, PartialEq)]
pub(crate) struct ErrorMsg {
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Utterance assembly (pure: messages in, events out)

#[derive(Debug, Clone, PartialEq)]
struct Piece {
    text: String,
    start: f64,
    end: f64,
    confidence: f32,
}

/// Collects `is_final` pieces of the current utterance. Times are absolute: the socket's
/// times plus the offset of the socket's first audio within the stream.
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    pieces: Vec<Piece>,
}

impl Assembler {
    fn joined(&self, extra: Option<&str>) -> String {
        let mut words: Vec<&str> = self.pieces.iter().map(|p| p.text.as_str()).collect();
        words.extend(extra);
        words.join(" ")
    }

    /// Handles one message; `offset` converts socket time to stream time.
    pub(crate) fn on_message(&mut self, msg: &ServerMessage, offset: f64) -> Vec<SttEvent> {
        let mut out = Vec::new();
        match msg {
            ServerMessage::Results(r) => {
                let alt = r.channel.alternatives.first();
                let text = alt.map(|a| a.transcript.trim()).unwrap_or_default();
                if r.is_final {
                    if !text.is_empty() {
                        self.pieces.push(Piece {
                            text: text.to_owned(),
                            start: offset + r.start,
                            end: offset + r.start + r.duration,
                            confidence: alt.map(|a| a.confidence).unwrap_or_default(),
                        });
                    }
                    if r.speech_final || r.from_finalize {
                        out.extend(self.take_final());
                    } else if !text.is_empty() {
                        out.push(SttEvent::Partial { text: self.joined(None) });
                    }
                } else if !text.is_empty() {
                    out.push(SttEvent::Partial { text: self.joined(Some(text)) });
                }
            }
            ServerMessage::UtteranceEnd(u) => {
                out.extend(self.take_final());
                out.push(SttEvent::SpeechEnded { at: offset + u.last_word_end });
            }
            ServerMessage::SpeechStarted(s) => {
                out.push(SttEvent::SpeechStarted { at: offset + s.timestamp })
            }
            ServerMessage::Error(e) => {
                let reason = [&e.variant, &e.description, &e.message]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(": ");
                out.push(SttEvent::Error(SpeechError::Protocol { provider: PROVIDER, reason }));
            }
            ServerMessage::Metadata(_) | ServerMessage::Unknown => {}
        }
        out
    }

    /// Ends the utterance: the concatenated final pieces, if any.
    pub(crate) fn take_final(&mut self) -> Option<SttEvent> {
        if self.pieces.is_empty() {
            return None;
        }
        let text = self.joined(None);
        let pieces = std::mem::take(&mut self.pieces);
        let confidence = pieces.iter().map(|p| p.confidence).sum::<f32>() / pieces.len() as f32;
        Some(SttEvent::Final {
            text,
            start: pieces.first().map(|p| p.start).unwrap_or_default(),
            end: pieces.last().map(|p| p.end).unwrap_or_default(),
            confidence,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ServerMessage {
        serde_json::from_str(s).expect("test message is valid")
    }

    fn results(text: &str, start: f64, dur: f64, is_final: bool, speech_final: bool) -> ServerMessage {
        parse(&format!(
            r#"{{"type":"Results","channel_index":[0,1],"duration":{dur},"start":{start},"is_final":{is_final},"speech_final":{speech_final},"channel":{{"alternatives":[{{"transcript":"{text}","confidence":0.5,"words":[]}}]}},"metadata":{{"request_id":"x"}}}}"#
        ))
    }

    #[test]
    fn control_messages_match_the_wire_format() {
        assert_eq!(serde_json::to_string(&Control::KeepAlive).unwrap(), r#"{"type":"KeepAlive"}"#);
        assert_eq!(serde_json::to_string(&Control::Finalize).unwrap(), r#"{"type":"Finalize"}"#);
        assert_eq!(serde_json::to_string(&Control::CloseStream).unwrap(), r#"{"type":"CloseStream"}"#);
    }

    #[test]
    fn parses_documented_messages_and_tolerates_unknown_types() {
        let m = parse(r#"{"type":"UtteranceEnd","channel":[0,1],"last_word_end":2.395}"#);
        assert_eq!(m, ServerMessage::UtteranceEnd(UtteranceEndMsg { last_word_end: 2.395 }));
        let m = parse(r#"{"type":"SpeechStarted","channel":[0],"timestamp":9.54}"#);
        assert_eq!(m, ServerMessage::SpeechStarted(SpeechStartedMsg { timestamp: 9.54 }));
        let m = parse(r#"{"type":"Metadata","transaction_key":"deprecated","request_id":"8c8e","sha256":"e3b0","created":"2024","duration":0.0,"channels":0}"#);
        assert!(matches!(m, ServerMessage::Metadata(_)));
        assert_eq!(parse(r#"{"type":"SomethingNew","x":1}"#), ServerMessage::Unknown);
        // speech_final absent is false.
        let m = parse(r#"{"type":"Results","start":0.0,"duration":1.0,"is_final":true,"channel":{"alternatives":[{"transcript":"hi","confidence":1.0}]}}"#);
        let ServerMessage::Results(r) = m else { panic!("expected Results") };
        assert!(!r.speech_final);
    }

    #[test]
    fn assembles_final_pieces_until_speech_final() {
        let mut a = Assembler::default();
        let ev = a.on_message(&results("hello", 0.0, 0.5, false, false), 0.0);
        assert_eq!(ev, vec![SttEvent::Partial { text: "hello".into() }]);
        let ev = a.on_message(&results("hello there", 0.0, 1.0, true, false), 0.0);
        assert_eq!(ev, vec![SttEvent::Partial { text: "hello there".into() }]);
        let ev = a.on_message(&results("how", 1.0, 0.3, false, false), 0.0);
        assert_eq!(ev, vec![SttEvent::Partial { text: "hello there how".into() }]);
        let ev = a.on_message(&results("how are you", 1.0, 1.0, true, true), 2.0);
        assert_eq!(
            ev,
            vec![SttEvent::Final { text: "hello there how are you".into(), start: 0.0, end: 4.0, confidence: 0.5 }]
        );
        assert_eq!(a.take_final(), None);
    }

    #[test]
    fn utterance_end_closes_the_utterance() {
        let mut a = Assembler::default();
        a.on_message(&results("one", 0.0, 1.0, true, false), 0.0);
        let ev = a.on_message(&parse(r#"{"type":"UtteranceEnd","last_word_end":0.9}"#), 0.0);
        assert_eq!(
            ev,
            vec![
                SttEvent::Final { text: "one".into(), start: 0.0, end: 1.0, confidence: 0.5 },
                SttEvent::SpeechEnded { at: 0.9 },
            ]
        );
    }
}
