//! The OpenAI chat completions wire format (the subset we use), typed, and a sans-IO decoder
//! for its server-sent events stream.
//!
//! Request: `POST {base}/v1/chat/completions` with `"stream": true`. Reply: `text/event-stream`
//! lines `data: {chunk}` with `choices[0].delta.content` text and `delta.tool_calls` fragments
//! (`index` says which call a fragment belongs to; `id` and `function.name` come first, then
//! `function.arguments` in pieces), a `finish_reason` on the last chunk and `data: [DONE]`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One message of the conversation, as the API takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum ChatMessage {
    System {
        content: String,
    },
    User {
        content: String,
    },
    Assistant {
        /// What the bot said. `None` for a turn that only called tools.
        content: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    Tool {
        tool_call_id: String,
        content: String,
    },
}

impl ChatMessage {
    pub fn assistant_text(text: impl Into<String>) -> Self {
        ChatMessage::Assistant {
            content: Some(text.into()),
            tool_calls: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: ToolKind,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolKind {
    Function,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    /// JSON text, exactly as the model wrote it.
    pub arguments: String,
}

#[derive(Debug, Serialize)]
pub struct ChatRequest<'a> {
    pub model: &'a str,
    pub messages: &'a [ChatMessage],
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub tools: &'a [ToolSpec],
}

/// A tool offered to the model.
#[derive(Debug, Clone, Serialize)]
pub struct ToolSpec {
    #[serde(rename = "type")]
    pub kind: ToolKind,
    pub function: FunctionSpec,
}

#[derive(Debug, Clone, Serialize)]
pub struct FunctionSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// A JSON Schema object: built once per client, sent as is.
    pub parameters: serde_json::Value,
}

/// One `data:` payload of the stream: a chunk, or an error the server reports mid-stream.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StreamEvent {
    Error { error: ErrorDetail },
    Chunk(ChatChunk),
}

#[derive(Debug, Deserialize)]
pub struct ErrorDetail {
    pub message: String,
}

/// The body of a non-success reply.
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
pub struct ChatChunk {
    /// Empty on usage-only chunks.
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
}

#[derive(Debug, Deserialize)]
pub struct ChunkChoice {
    #[serde(default)]
    pub delta: Delta,
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Delta {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub tool_calls: Vec<ToolCallDelta>,
}

#[derive(Debug, Deserialize)]
pub struct ToolCallDelta {
    /// Some servers leave it out when there is only one call.
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub function: Option<FunctionDelta>,
}

#[derive(Debug, Deserialize)]
pub struct FunctionDelta {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    FunctionCall,
    #[serde(other)]
    Other,
}

/// Tool calls assembled from their fragments, in `index` order.
#[derive(Debug, Default)]
pub struct ToolCallAssembler {
    calls: BTreeMap<u32, ToolCall>,
}

impl ToolCallAssembler {
    pub fn push(&mut self, delta: ToolCallDelta) {
        let call = self.calls.entry(delta.index).or_insert_with(|| ToolCall {
            id: String::new(),
            kind: ToolKind::Function,
            function: FunctionCall {
                name: String::new(),
                arguments: String::new(),
            },
        });
        if let Some(id) = delta.id.filter(|id| !id.is_empty()) {
            call.id = id;
        }
        if let Some(f) = delta.function {
            // Names come whole in practice, but appending is what the format allows.
            if let Some(name) = f.name {
                call.function.name.push_str(&name);
            }
            if let Some(args) = f.arguments {
                call.function.arguments.push_str(&args);
            }
        }
    }

    /// The finished calls. A call without an id gets one, so its result can refer to it.
    pub fn finish(self) -> Vec<ToolCall> {
        self.calls
            .into_iter()
            .map(|(index, mut call)| {
                if call.id.is_empty() {
                    call.id = format!("call_{index}");
                }
                call
            })
            .collect()
    }
}

/// What one SSE event carried.
#[derive(Debug, PartialEq)]
pub enum SseItem {
    /// A `data:` payload (several `data:` lines of one event joined by `\n`).
    Data(String),
    /// `data: [DONE]`.
    Done,
}

/// Decodes `text/event-stream` bytes into events. Bytes may arrive split anywhere, even
/// inside a UTF-8 character. Comments (`:`), `event:`/`id:`/`retry:` fields and lines that
/// are not fields are skipped, as the SSE spec says.
#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    data: Option<String>,
}

impl SseDecoder {
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<SseItem>) {
        for &b in bytes {
            if b == b'\n' {
                let mut line = std::mem::take(&mut self.line);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.on_line(&String::from_utf8_lossy(&line), out);
            } else {
                self.line.push(b);
            }
        }
    }

    /// The body ended: an event without its closing blank line still counts.
    pub fn finish(&mut self, out: &mut Vec<SseItem>) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.on_line(&String::from_utf8_lossy(&line), out);
        }
        self.dispatch(out);
    }

    fn on_line(&mut self, line: &str, out: &mut Vec<SseItem>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        if field == "data" {
            // `[DONE]` stands alone; dispatch what came before it as its own event.
            if value.trim() == "[DONE]" {
                self.dispatch(out);
                out.push(SseItem::Done);
                return;
            }
            match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            }
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseItem>) {
        if let Some(d) = self.data.take() {
            out.push(SseItem::Data(d));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(parts: &[&[u8]]) -> Vec<SseItem> {
        let mut d = SseDecoder::default();
        let mut out = Vec::new();
        for p in parts {
            d.push(p, &mut out);
        }
        d.finish(&mut out);
        out
    }

    #[test]
    fn events_split_anywhere_are_reassembled() {
        let text =
            "data: {\"a\":1}\n\n: keep-alive\r\n\r\nevent: x\ndata: caf\u{e9}\n\ndata: [DONE]\n\n"
                .as_bytes();
        let whole = decode(&[text]);
        assert_eq!(
            whole,
            vec![
                SseItem::Data("{\"a\":1}".into()),
                SseItem::Data("café".into()),
                SseItem::Done
            ]
        );
        for cut in 1..text.len() {
            assert_eq!(decode(&[&text[..cut], &text[cut..]]), whole, "cut at {cut}");
        }
    }

    #[test]
    fn multi_line_data_and_unterminated_last_event() {
        assert_eq!(
            decode(&[b"data: a\ndata: b\n\ndata:c"]),
            vec![SseItem::Data("a\nb".into()), SseItem::Data("c".into())]
        );
        assert!(decode(&[b"garbage without colon\n\nretry: 10\n\n"]).is_empty());
    }

    #[test]
    fn chunks_parse_with_and_without_optional_fields() {
        let c: StreamEvent = serde_json::from_str(
            r#"{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}"#,
        )
        .unwrap();
        let StreamEvent::Chunk(c) = c else {
            panic!("a chunk")
        };
        assert_eq!(c.choices[0].delta.content.as_deref(), Some("Hi"));
        let c: StreamEvent =
            serde_json::from_str(r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#)
                .unwrap();
        let StreamEvent::Chunk(c) = c else {
            panic!("a chunk")
        };
        assert_eq!(c.choices[0].finish_reason, Some(FinishReason::ToolCalls));
        let e: StreamEvent =
            serde_json::from_str(r#"{"error":{"message":"overloaded","code":503}}"#).unwrap();
        assert!(matches!(e, StreamEvent::Error { error } if error.message == "overloaded"));
        let c: StreamEvent = serde_json::from_str(
            r#"{"choices":[{"delta":{"content":null},"finish_reason":"eos"}]}"#,
        )
        .unwrap();
        let StreamEvent::Chunk(c) = c else {
            panic!("a chunk")
        };
        assert_eq!(c.choices[0].finish_reason, Some(FinishReason::Other));
    }

    #[test]
    fn tool_call_fragments_assemble_by_index() {
        let mut a = ToolCallAssembler::default();
        let frags = [
            r#"{"index":0,"id":"call_a","type":"function","function":{"name":"lookup","arguments":""}}"#,
            r#"{"index":1,"id":"call_b","function":{"name":"hang_up","arguments":"{\"rea"}}"#,
            r#"{"index":0,"function":{"arguments":"{\"query\":"}}"#,
            r#"{"index":0,"function":{"arguments":"\"hours\"}"}}"#,
            r#"{"index":1,"function":{"arguments":"son\":\"done\"}"}}"#,
        ];
        for f in frags {
            a.push(serde_json::from_str(f).unwrap());
        }
        let calls = a.finish();
        assert_eq!(calls.len(), 2);
        assert_eq!(
            (calls[0].id.as_str(), calls[0].function.name.as_str()),
            ("call_a", "lookup")
        );
        assert_eq!(calls[0].function.arguments, r#"{"query":"hours"}"#);
        assert_eq!(calls[1].function.arguments, r#"{"reason":"done"}"#);
    }

    #[test]
    fn messages_serialize_as_the_api_expects() {
        let msgs = vec![
            ChatMessage::System {
                content: "s".into(),
            },
            ChatMessage::Assistant {
                content: None,
                tool_calls: vec![ToolCall {
                    id: "c1".into(),
                    kind: ToolKind::Function,
                    function: FunctionCall {
                        name: "lookup".into(),
                        arguments: "{}".into(),
                    },
                }],
            },
            ChatMessage::Tool {
                tool_call_id: "c1".into(),
                content: "{}".into(),
            },
            ChatMessage::assistant_text("ok"),
        ];
        assert_eq!(
            serde_json::to_value(&msgs).unwrap(),
            serde_json::json!([
                {"role": "system", "content": "s"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "{}"},
                {"role": "assistant", "content": "ok"}
            ])
        );
    }
}
