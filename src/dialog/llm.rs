//! LLM mode: an OpenAI-compatible chat model drives the call.
//!
//! One [`LlmSession`] per call, owned by the call actor. [`LlmSession::respond`] starts a
//! streamed chat completion in its own task and hands back a channel of [`LlmOutput`]s:
//! sentences for TTS as soon as each is complete (so the caller hears the first words before
//! the model has finished), [`Action`](crate::dialog::Action)s from tool calls, then `Done` or
//! an `Error`. Nothing the actor calls blocks or awaits.
//!
//! Tools offered to the model: `transfer_to_department {department}` and `hang_up {reason}`
//! end the turn with the matching action; `lookup {query}` (offered only when `lookup_url` is
//! set) POSTs `{"query": ...}` to that webhook and feeds its JSON answer back to the model,
//! which then continues, for at most `max_tool_rounds` rounds per turn.
//!
//! On barge-in the actor calls [`LlmSession::interrupted`] with the part of the answer the
//! caller heard: the stream is cancelled and the history keeps only that, so the model does not
//! believe it said what nobody heard.
//!
//! ```no_run
//! # async fn demo(config: switchboard::dialog::llm::LlmConfig) -> Result<(), switchboard::dialog::llm::LlmError> {
//! use switchboard::dialog::llm::{LlmClient, LlmOutput, LlmSession};
//! let mut session = LlmSession::new(LlmClient::new(&config)?, config.system_prompt.clone());
//! let mut answer = session.respond("When are you open?");
//! while let Some(out) = answer.recv().await {
//!     match out {
//!         LlmOutput::Sentence(text) => { /* to TTS */ }
//!         LlmOutput::Action(action) => { /* transfer, hang up */ }
//!         LlmOutput::Done | LlmOutput::Error(_) => break,
//!     }
//! }
//! // Later, if the caller barged in while the answer played:
//! session.interrupted("We are open from nine");
//! # Ok(()) }
//! ```
//!
//! `history` takes `&mut self`: the answer's text lives in its task's log until the turn
//! closes, and reading it means copying it out.
//!
//! Works with api.openai.com and with self-hosted servers (llama.cpp, vLLM, Ollama's OpenAI
//! endpoint): `base_url` may be given with or without its `/v1`.

mod client;
mod sentences;
mod session;
mod tools;
mod wire;

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

pub use client::LlmClient;
pub use sentences::{SentenceSplitter, speakable};
pub use session::{LlmOutput, LlmSession};
pub use wire::{ChatMessage, FunctionCall, ToolCall, ToolKind};

/// The `[llm]` config section. LLM mode is configured when `base_url` and `model` are set.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    /// e.g. `https://api.openai.com`, `http://127.0.0.1:8080` (llama.cpp), `http://gpu:8000/v1`.
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// Required by api.openai.com; self-hosted servers often need none.
    #[serde(default)]
    pub api_key: Option<String>,
    /// The system prompt calls start with (a flow may pass its own).
    #[serde(default = "default_system_prompt")]
    pub system_prompt: String,
    /// Unset: the server's default.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Upper bound on one answer's tokens. Unset: the server's default.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// From sending the request to the first token of the answer.
    #[serde(default = "default_first_token_timeout", with = "humantime_serde")]
    pub first_token_timeout: Duration,
    /// Longest silence between two pieces of a streamed answer.
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// The `lookup` tool's webhook: POST `{"query": "..."}`, JSON answer. Unset: no lookup tool.
    #[serde(default)]
    pub lookup_url: Option<String>,
    #[serde(default = "default_lookup_timeout", with = "humantime_serde")]
    pub lookup_timeout: Duration,
    /// Lookup rounds per caller turn; the model must answer in words after the last one.
    #[serde(default = "default_max_tool_rounds")]
    pub max_tool_rounds: u32,
    /// Department names the model may transfer to. Empty: any name (the call center decides).
    #[serde(default)]
    pub departments: Vec<String>,
    /// A sentence longer than this is cut at a clause break, so TTS can start.
    #[serde(default = "default_max_sentence_chars")]
    pub max_sentence_chars: usize,
}

fn default_system_prompt() -> String {
    "You are a friendly phone assistant. Your words are spoken aloud on a phone call: answer in \
     one to three short sentences of plain text, without lists, markdown or emoji. Use the tools \
     to transfer the caller or end the call when asked."
        .to_owned()
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_first_token_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_lookup_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_max_tool_rounds() -> u32 {
    3
}
fn default_max_sentence_chars() -> usize {
    150
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            model: None,
            api_key: None,
            system_prompt: default_system_prompt(),
            temperature: None,
            max_tokens: None,
            connect_timeout: default_connect_timeout(),
            first_token_timeout: default_first_token_timeout(),
            idle_timeout: default_idle_timeout(),
            lookup_url: None,
            lookup_timeout: default_lookup_timeout(),
            max_tool_rounds: default_max_tool_rounds(),
            departments: Vec::new(),
            max_sentence_chars: default_max_sentence_chars(),
        }
    }
}

impl LlmConfig {
    /// Whether LLM mode can be used (`base_url` and `model` set).
    pub fn is_configured(&self) -> bool {
        self.base_url.as_deref().is_some_and(|s| !s.is_empty())
            && self.model.as_deref().is_some_and(|s| !s.is_empty())
    }
}

impl fmt::Debug for LlmConfig {
    // The key is a bearer credential: never log it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("system_prompt", &self.system_prompt)
            .field("temperature", &self.temperature)
            .field("max_tokens", &self.max_tokens)
            .field("connect_timeout", &self.connect_timeout)
            .field("first_token_timeout", &self.first_token_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("lookup_url", &self.lookup_url)
            .field("lookup_timeout", &self.lookup_timeout)
            .field("max_tool_rounds", &self.max_tool_rounds)
            .field("departments", &self.departments)
            .field("max_sentence_chars", &self.max_sentence_chars)
            .finish()
    }
}

/// Why an answer failed. Messages are for logs and call events: they never contain the key.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum LlmError {
    #[error("LLM mode is not configured: {0}")]
    NotConfigured(String),
    #[error("could not reach the language model server: {0}")]
    Connect(String),
    #[error(
        "the language model server rejected our credentials (HTTP {status}); check llm.api_key"
    )]
    Unauthorized { status: u16 },
    #[error("the language model server is rate limiting us (HTTP 429){}", retry_hint(*.retry_after_secs))]
    RateLimited { retry_after_secs: Option<u64> },
    #[error("the language model server answered HTTP {status}: {message}")]
    Http { status: u16, message: String },
    #[error("the language model server reported an error mid-answer: {0}")]
    Server(String),
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("the answer broke off: {0}")]
    Broken(String),
    #[error("unusable reply from the language model server: {0}")]
    Protocol(String),
    #[error("the model still wanted tools after {0} rounds")]
    ToolRounds(u32),
    #[error("nobody is listening for the answer any more")]
    Closed,
}

fn retry_hint(secs: Option<u64>) -> String {
    secs.map(|s| format!("; retry after {s} s"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_key() {
        let c = LlmConfig {
            api_key: Some("sk-sekrit".into()),
            ..Default::default()
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("sk-sekrit") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn configured_needs_base_url_and_model() {
        let mut c = LlmConfig::default();
        assert!(!c.is_configured());
        c.base_url = Some("http://127.0.0.1:8080".into());
        assert!(!c.is_configured());
        c.model = Some("qwen2.5".into());
        assert!(c.is_configured());
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            LlmError::RateLimited {
                retry_after_secs: Some(7)
            }
            .to_string(),
            "the language model server is rate limiting us (HTTP 429); retry after 7 s"
        );
        assert_eq!(
            LlmError::Unauthorized { status: 401 }.to_string(),
            "the language model server rejected our credentials (HTTP 401); check llm.api_key"
        );
    }
}
