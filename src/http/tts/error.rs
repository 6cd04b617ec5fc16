//! Errors of the TTS API: the shared [`AppError`]s plus the ones only synthesis has (413, 429,
//! provider failures). Same body shape as every API error: `{"error": {"code", "message"}}`,
//! with `provider` added when a provider failed.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::AppError;
use crate::speech::SpeechError;
use crate::speech::catalog::ProviderId;

#[derive(Debug, thiserror::Error)]
pub enum TtsApiError {
    #[error(transparent)]
    App(#[from] AppError),
    #[error("text is {got} characters; the limit is {max}")]
    TextTooLong { max: usize, got: usize },
    #[error("this API key already runs {limit} syntheses; wait for one to finish")]
    TooManyRequests { limit: usize },
    #[error("{error}")]
    Provider { provider: ProviderId, error: SpeechError },
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: String,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<ProviderId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl TtsApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::App(e) => e.status(),
            Self::TextTooLong { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Provider { error, .. } => match error {
                // Our configuration or the caller's voice, not the provider's health.
                SpeechError::NotConfigured { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                SpeechError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                SpeechError::RateLimited { .. } => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_GATEWAY,
            },
        }
    }

    /// Stable codes; provider failures are `<provider>_<what>`, e.g. `elevenlabs_unauthorized`.
    pub fn code(&self) -> String {
        match self {
            Self::App(e) => e.code().to_owned(),
            Self::TextTooLong { .. } => "text_too_long".to_owned(),
            Self::TooManyRequests { .. } => "too_many_requests".to_owned(),
            Self::Provider { provider, error } => {
                let what = match error {
                    SpeechError::Unauthorized { .. } => "unauthorized",
                    SpeechError::RateLimited { .. } => "rate_limited",
                    SpeechError::Timeout { .. } => "timeout",
                    SpeechError::Connect { .. } | SpeechError::Closed { .. } => "unreachable",
                    SpeechError::NotConfigured { .. } => "not_configured",
                    SpeechError::Protocol { .. } | SpeechError::Engine { .. } => "failed",
                };
                format!("{}_{what}", provider.as_str())
            }
        }
    }
}

impl IntoResponse for TtsApiError {
    fn into_response(self) -> Response {
        if let Self::App(e) = self {
            return e.into_response();
        }
        if let Self::Provider { error, .. } = &self {
            tracing::warn!(%error, "TTS provider error");
        }
        let provider = match &self {
            Self::Provider { provider, .. } => Some(*provider),
            _ => None,
        };
        let field = matches!(self, Self::TextTooLong { .. }).then_some("text");
        let body = Body { error: Detail { code: self.code(), message: self.to_string(), provider, field } };
        (self.status(), Json(body)).into_response()
    }
}
