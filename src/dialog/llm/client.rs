//! The HTTP side: one pooled client per server, the chat completions request, error mapping.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use tracing::debug;

use super::tools::Tools;
use super::wire::{ChatMessage, ChatRequest, ErrorBody};
use super::{LlmConfig, LlmError};

/// A configured chat model. Cheap to clone: calls share one connection pool.
#[derive(Clone)]
pub struct LlmClient {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    http: reqwest::Client,
    url: reqwest::Url,
    model: String,
    api_key: Option<String>,
    temperature: Option<f32>,
    max_tokens: Option<u32>,
    pub first_token_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_tool_rounds: u32,
    pub max_sentence_chars: usize,
    pub tools: Tools,
}

impl std::fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmClient")
            .field("url", &self.inner.url.as_str())
            .field("model", &self.inner.model)
            .finish()
    }
}

impl LlmClient {
    /// Fails when LLM mode is not configured (no `base_url` or `model`), when `base_url` or
    /// `lookup_url` is not a URL, or when api.openai.com is used without a key.
    pub fn new(config: &LlmConfig) -> Result<Self, LlmError> {
        let (Some(base_url), Some(model)) = (
            config.base_url.as_deref().filter(|s| !s.is_empty()),
            config.model.as_deref().filter(|s| !s.is_empty()),
        ) else {
            return Err(LlmError::NotConfigured(
                "set llm.base_url and llm.model".to_owned(),
            ));
        };
        let url = chat_url(base_url)?;
        let api_key = config.api_key.clone().filter(|k| !k.is_empty());
        if url.host_str() == Some("api.openai.com") && api_key.is_none() {
            return Err(LlmError::NotConfigured(
                "api.openai.com needs llm.api_key".to_owned(),
            ));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            // Keep connections warm: the next turn skips the TCP and TLS handshakes.
            .tcp_keepalive(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| LlmError::NotConfigured(format!("http client: {e}")))?;
        let tools = Tools::new(
            http.clone(),
            config.departments.clone(),
            config.lookup_url.as_deref(),
            config.lookup_timeout,
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                url,
                model: model.to_owned(),
                api_key,
                temperature: config.temperature,
                max_tokens: config.max_tokens,
                first_token_timeout: config.first_token_timeout,
                idle_timeout: config.idle_timeout,
                max_tool_rounds: config.max_tool_rounds,
                max_sentence_chars: config.max_sentence_chars,
                tools,
            }),
        })
    }
}

impl Inner {
    /// Sends one streamed completion request; `Ok` once the server accepted it (2xx with an
    /// event stream), so the body can be read.
    pub async fn start(
        &self,
        messages: &[ChatMessage],
        last_round: bool,
    ) -> Result<reqwest::Response, LlmError> {
        let body = ChatRequest {
            model: &self.model,
            messages,
            stream: true,
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            tools: self.tools.specs(last_round),
        };
        let mut req = self
            .http
            .post(self.url.clone())
            .header(ACCEPT, "text/event-stream")
            .json(&body);
        if let Some(k) = &self.api_key {
            req = req.bearer_auth(k);
        }
        debug!(
            messages = messages.len(),
            last_round, "chat completion request"
        );
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                LlmError::Timeout("the response")
            } else {
                LlmError::Connect(error_chain(&e))
            }
        })?;
        if !resp.status().is_success() {
            return Err(error_from_response(resp).await);
        }
        let ct = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if !ct.is_empty() && !ct.starts_with("text/event-stream") {
            let body = resp.text().await.unwrap_or_default();
            let snippet: String = body.chars().take(120).collect();
            return Err(LlmError::Protocol(format!(
                "expected an event stream, got {ct}: {snippet}"
            )));
        }
        Ok(resp)
    }
}

/// `{base}/v1/chat/completions`, whether or not `base` already ends in `/v1`, keeping any
/// path prefix a proxy needs.
fn chat_url(base: &str) -> Result<reqwest::Url, LlmError> {
    let mut url = reqwest::Url::parse(base)
        .map_err(|e| LlmError::NotConfigured(format!("llm.base_url: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(LlmError::NotConfigured(format!(
            "llm.base_url: scheme `{}` is not http(s)",
            url.scheme()
        )));
    }
    let prefix = url.path().trim_end_matches('/').to_owned();
    let path = if prefix.ends_with("/v1") {
        format!("{prefix}/chat/completions")
    } else {
        format!("{prefix}/v1/chat/completions")
    };
    url.set_path(&path);
    Ok(url)
}

/// A non-success reply as a readable error, with the server's own message when it gave one.
async fn error_from_response(resp: reqwest::Response) -> LlmError {
    let status = resp.status().as_u16();
    match status {
        401 | 403 => return LlmError::Unauthorized { status },
        429 => {
            let retry_after_secs = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            return LlmError::RateLimited { retry_after_secs };
        }
        _ => {}
    }
    let body = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<ErrorBody>(&body)
        .map(|b| b.error.message)
        .unwrap_or_else(|_| body.chars().take(200).collect());
    LlmError::Http { status, message }
}

/// reqwest's own message is only "error sending request"; the cause is in its sources.
/// The URL is left out: it is ours and could carry credentials a proxy needs.
pub(super) fn error_chain(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    if let Some(url) = e.url() {
        out = out.replace(&format!(" for url ({url})"), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_url_with_and_without_v1() {
        let u = |b| chat_url(b).unwrap().to_string();
        assert_eq!(
            u("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/v1/chat/completions"
        );
        assert_eq!(
            u("http://127.0.0.1:8080/"),
            "http://127.0.0.1:8080/v1/chat/completions"
        );
        assert_eq!(
            u("https://api.openai.com/v1"),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            u("http://gpu:8000/v1/"),
            "http://gpu:8000/v1/chat/completions"
        );
        assert_eq!(
            u("https://proxy.example/openai"),
            "https://proxy.example/openai/v1/chat/completions"
        );
        assert!(chat_url("ftp://x").is_err());
        assert!(chat_url("nonsense").is_err());
    }

    #[test]
    fn client_needs_base_url_model_and_a_key_for_the_official_api() {
        let mut c = LlmConfig::default();
        assert!(matches!(
            LlmClient::new(&c),
            Err(LlmError::NotConfigured(_))
        ));
        c.base_url = Some("https://api.openai.com".into());
        c.model = Some("gpt-4o-mini".into());
        assert!(
            matches!(LlmClient::new(&c), Err(LlmError::NotConfigured(m)) if m.contains("api_key"))
        );
        c.api_key = Some("k".into());
        assert!(LlmClient::new(&c).is_ok());
        c.base_url = Some("http://127.0.0.1:8080".into());
        c.api_key = None;
        assert!(LlmClient::new(&c).is_ok());
    }
}
