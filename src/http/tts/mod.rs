//! The voice catalog and synthesis API under `/api/v1/tts`, and streaming synthesis over
//! `/ws/tts` ([`ws`]).
//!
//! - `GET /tts/providers`: every TTS provider with its status (usable, missing key, down).
//! - `GET /tts/voices?provider=&language=`: voices, from the engine or the provider's API
//!   (cached; `stale` when served from cache because the provider is unreachable).
//! - `GET /tts/tiers`: priced tiers from `[tts_api.tiers]`.
//! - `POST /tts/synthesize`: audio, streamed (chunked) as the provider produces it.
//! - `GET /tts/voices/{id}/preview`: a short sample, cached in memory.
//!
//! Limits: texts longer than `tts_api.max_text_chars` are refused with 413; each API key may
//! run `tts_api.max_concurrent_per_key` syntheses at once (429 beyond). Provider failures
//! become readable errors whose `code` names the provider (`elevenlabs_unauthorized`, 502).

mod encode;
mod error;
mod limit;
pub mod ws;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tracing::{debug, warn};
use utoipa::{IntoParams, OpenApi, ToSchema};

pub use self::encode::{Audio, AudioEncoder, AudioFormat, wav_header};
pub use self::error::TtsApiError;
pub use self::limit::{KeyLimiter, Permit};
use crate::app::AppState;
use crate::error::AppError;
use crate::http::openapi::ApiErrorBody;
use crate::speech::SpeechError;
use crate::speech::catalog::{ProviderId, ProviderStatus, TtsApiConfig, TtsCatalog, VoiceInfo, provider_name};
use crate::speech::tts::{TtsContext, TtsEvent, TtsInput, TtsOutputFormat, TtsStream};
use crate::store::Tenant;

/// The OpenAPI document of this area (merged in [`crate::http::openapi::document`]).
#[derive(OpenApi)]
#[openapi(
    paths(providers, voices, tiers, synthesize, preview),
    components(schemas(ProviderList, ProviderView, VoiceCatalogView, VoiceSource, VoiceInfo, TierList, TierView,
        SynthesizeRequest, AudioFormat, ProviderId, ProviderStatus, crate::speech::catalog::VoiceGender)),
    tags((name = "tts", description = "Voice catalog, priced tiers and synthesis. Streaming synthesis: `GET /ws/tts` \
        (see the README)"))
)]
pub struct TtsApiDoc;

/// Previews kept in memory (each a few seconds of audio).
const PREVIEW_CACHE: usize = 64;

/// The API's shared state: the catalog, the per-key limiter, the preview cache.
#[derive(Clone)]
pub struct TtsApi {
    pub catalog: TtsCatalog,
    pub limiter: KeyLimiter,
    previews: Arc<Mutex<VecDeque<(PreviewKey, Bytes)>>>,
}

type PreviewKey = (ProviderId, String, AudioFormat);

impl TtsApi {
    pub fn new(speech: &crate::speech::providers::SpeechConfig, cfg: &TtsApiConfig) -> Self {
        Self {
            catalog: TtsCatalog::new(speech, cfg.voice_cache_ttl),
            limiter: KeyLimiter::new(cfg.max_concurrent_per_key),
            previews: Arc::new(Mutex::new(VecDeque::new())),
        }
    }

    /// The provider a request speaks with: the one it names, else its tier's first configured
    /// provider, else the deployment's (`speech.tts`).
    pub fn resolve(&self, cfg: &TtsApiConfig, provider: Option<ProviderId>, tier: Option<&str>) -> Result<ProviderId, TtsApiError> {
        if let Some(p) = provider {
            return Ok(p);
        }
        let Some(name) = tier else {
            return Ok(self.catalog.default_provider());
        };
        let t = cfg.tiers.get(name).ok_or_else(|| {
            TtsApiError::App(AppError::Validation { field: "tier".into(), message: format!("unknown tier {name:?}") })
        })?;
        t.providers
            .iter()
            .copied()
            .find(|p| self.catalog.is_configured(*p))
            .ok_or_else(|| TtsApiError::App(AppError::Unavailable(format!("no provider of tier {name:?} is configured"))))
    }
}

/// An API caller: the tenant, and a fingerprint of the key it used (the concurrency limit is
/// per key). Takes `Authorization: Bearer <key>`, or `?api_key=<key>` where a browser cannot
/// set headers (WebSockets).
#[derive(Debug, Clone)]
pub struct TtsCaller {
    pub tenant: Tenant,
    pub key_id: String,
}

#[derive(Deserialize)]
struct KeyQuery {
    api_key: Option<String>,
}

impl FromRequestParts<AppState> for TtsCaller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(|k| k.trim().to_owned());
        let key = match header {
            Some(k) => k,
            None => Query::<KeyQuery>::try_from_uri(&parts.uri)
                .ok()
                .and_then(|q| q.0.api_key)
                .ok_or(AppError::Unauthorized)?,
        };
        let tenant = crate::http::auth::Principal::from_key(state, &key).await?.tenant_wide()?;
        Ok(Self { tenant, key_id: hex::encode(&Sha256::digest(key.as_bytes())[..8]) })
    }
}

// ---------------------------------------------------------------------------------------------
// GET /tts/providers

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderView {
    pub id: ProviderId,
    /// The name errors and logs use.
    pub name: &'static str,
    /// Calls speak with this one (`speech.tts`).
    pub default: bool,
    pub status: ProviderStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub sample_rates: Vec<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderList {
    pub providers: Vec<ProviderView>,
}

#[utoipa::path(get, path = "/api/v1/tts/providers", tag = "tts",
    responses((status = 200, body = ProviderList), (status = 401, body = ApiErrorBody)))]
pub async fn providers(State(state): State<AppState>, _caller: TtsCaller) -> Json<ProviderList> {
    let catalog = &state.tts_api.catalog;
    let ids = catalog.listed();
    let statuses = futures_util::future::join_all(ids.iter().map(|id| catalog.status(*id))).await;
    let providers = ids
        .into_iter()
        .zip(statuses)
        .map(|(id, (status, detail))| ProviderView {
            id,
            name: provider_name(id),
            default: id == catalog.default_provider(),
            status,
            detail,
            sample_rates: id.sample_rates().to_vec(),
        })
        .collect();
    Json(ProviderList { providers })
}

// ---------------------------------------------------------------------------------------------
// GET /tts/voices

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct VoiceParams {
    pub provider: Option<String>,
    /// `en` matches `en-us`, `en-gb`...; `en-us` only itself.
    pub language: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VoiceSource {
    pub provider: ProviderId,
    /// Served from cache because the provider could not be reached.
    pub stale: bool,
    pub age_seconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VoiceCatalogView {
    pub voices: Vec<VoiceInfo>,
    pub sources: Vec<VoiceSource>,
}

fn parse_provider(s: &str) -> Result<ProviderId, TtsApiError> {
    ProviderId::parse(s).ok_or_else(|| {
        TtsApiError::App(AppError::Validation {
            field: "provider".into(),
            message: format!("unknown provider {s:?} (espeak, elevenlabs, openai, tone)"),
        })
    })
}

#[utoipa::path(get, path = "/api/v1/tts/voices", tag = "tts", params(VoiceParams),
    responses((status = 200, body = VoiceCatalogView), (status = 422, body = ApiErrorBody),
              (status = 502, description = "the provider failed; `code` names it", body = ApiErrorBody)))]
pub async fn voices(
    State(state): State<AppState>,
    _caller: TtsCaller,
    Query(params): Query<VoiceParams>,
) -> Result<Json<VoiceCatalogView>, TtsApiError> {
    let catalog = &state.tts_api.catalog;
    let explicit = params.provider.as_deref().map(parse_provider).transpose()?;
    let ids = match explicit {
        Some(p) => vec![p],
        // Unconfigured providers have nothing to list; `/tts/providers` says why.
        None => catalog.listed().into_iter().filter(|p| catalog.is_configured(*p)).collect(),
    };
    let mut out = VoiceCatalogView { voices: Vec::new(), sources: Vec::new() };
    for id in ids {
        match catalog.voices(id).await {
            Ok(list) => {
                out.voices.extend(
                    list.voices.iter().filter(|v| params.language.as_deref().is_none_or(|l| v.speaks(l))).cloned(),
                );
                out.sources.push(VoiceSource { provider: id, stale: list.stale, age_seconds: list.age.as_secs(), error: None });
            }
            Err(e) if explicit.is_some() => return Err(TtsApiError::Provider { provider: id, error: e }),
            Err(e) => out.sources.push(VoiceSource { provider: id, stale: false, age_seconds: 0, error: Some(e.to_string()) }),
        }
    }
    Ok(Json(out))
}

// ---------------------------------------------------------------------------------------------
// GET /tts/tiers

#[derive(Debug, Serialize, ToSchema)]
pub struct TierView {
    pub name: String,
    pub description: String,
    pub providers: Vec<ProviderId>,
    /// The provider the tier speaks with now (its first configured one), if any.
    pub active_provider: Option<ProviderId>,
    pub price_per_minute: f64,
    pub default: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TierList {
    pub tiers: Vec<TierView>,
}

#[utoipa::path(get, path = "/api/v1/tts/tiers", tag = "tts",
    responses((status = 200, body = TierList), (status = 401, body = ApiErrorBody)))]
pub async fn tiers(State(state): State<AppState>, _caller: TtsCaller) -> Json<TierList> {
    let cfg = &state.config.tts_api;
    let catalog = &state.tts_api.catalog;
    let tiers = cfg
        .tiers
        .iter()
        .map(|(name, t)| TierView {
            name: name.clone(),
            description: t.description.clone(),
            providers: t.providers.clone(),
            active_provider: t.providers.iter().copied().find(|p| catalog.is_configured(*p)),
            price_per_minute: t.price_per_minute,
            default: *name == cfg.default_tier,
        })
        .collect();
    Json(TierList { tiers })
}

// ---------------------------------------------------------------------------------------------
// POST /tts/synthesize

fn default_format() -> AudioFormat {
    AudioFormat::Wav
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SynthesizeRequest {
    pub text: String,
    /// A voice id from `/tts/voices`; the provider's configured voice when absent.
    #[serde(default)]
    pub voice: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    /// Picks the provider when `provider` is absent.
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default = "default_format")]
    #[schema(default = "wav")]
    pub format: AudioFormat,
    /// Speaking rate as a multiple of normal.
    #[serde(default)]
    pub speed: Option<f32>,
}

/// Checks a text against the length limit.
pub fn check_text(cfg: &TtsApiConfig, text: &str) -> Result<(), TtsApiError> {
    let chars = text.chars().count();
    if text.trim().is_empty() {
        return Err(TtsApiError::App(AppError::Validation { field: "text".into(), message: "text is empty".into() }));
    }
    if chars > cfg.max_text_chars {
        return Err(TtsApiError::TextTooLong { max: cfg.max_text_chars, got: chars });
    }
    Ok(())
}

/// Opens a provider stream for one utterance in `format`.
pub async fn open_stream(
    state: &AppState,
    provider: ProviderId,
    voice: Option<String>,
    speed: Option<f32>,
    format: AudioFormat,
    label: &str,
) -> Result<TtsStream, TtsApiError> {
    let tts = state.tts_api.catalog.provider(provider).map_err(|error| TtsApiError::Provider { provider, error })?;
    let ctx = TtsContext {
        call_id: label.to_owned(),
        voice,
        speed,
        // μ-law out: let a provider that can produce it do so; everything else wants PCM.
        preferred: Some(if format == AudioFormat::Mulaw8000 { TtsOutputFormat::Mulaw8k } else { TtsOutputFormat::Pcm16k }),
    };
    tts.open(ctx).await.map_err(|error| TtsApiError::Provider { provider, error })
}

#[utoipa::path(post, path = "/api/v1/tts/synthesize", tag = "tts", request_body = SynthesizeRequest,
    responses(
        (status = 200, description = "Audio, streamed with chunked transfer as it is synthesized. `wav`: a 44-byte \
            header with open (0xFFFFFFFF) sizes, then s16le mono at the provider's rate; `pcm_16000`: raw s16le; \
            `mulaw_8000`: raw G.711 μ-law; `opus`: Ogg Opus, 20 ms packets.",
            content(("audio/wav"), ("audio/L16;rate=16000;channels=1"), ("audio/basic"), ("audio/ogg; codecs=opus"))),
        (status = 400, body = ApiErrorBody), (status = 413, description = "text_too_long", body = ApiErrorBody),
        (status = 422, body = ApiErrorBody), (status = 429, description = "too_many_requests", body = ApiErrorBody),
        (status = 502, description = "the provider failed; `code` names it, e.g. `elevenlabs_unauthorized`", body = ApiErrorBody),
        (status = 504, body = ApiErrorBody)))]
pub async fn synthesize(
    State(state): State<AppState>,
    caller: TtsCaller,
    body: Result<Json<SynthesizeRequest>, JsonRejection>,
) -> Result<Response, TtsApiError> {
    let Json(req) = body.map_err(|e| TtsApiError::App(AppError::BadRequest(e.body_text())))?;
    let cfg = &state.config.tts_api;
    check_text(cfg, &req.text)?;
    let explicit = req.provider.as_deref().map(parse_provider).transpose()?;
    let provider = state.tts_api.resolve(cfg, explicit, req.tier.as_deref())?;
    let permit = state.tts_api.limiter.acquire(&caller.key_id)?;
    let stream = open_stream(&state, provider, req.voice, req.speed, req.format, "api").await?;
    stream.input.send(TtsInput::Text(req.text)).await.map_err(|_| closed(provider))?;
    stream.input.send(TtsInput::Finish).await.map_err(|_| closed(provider))?;
    let mut body = BodyStream::new(stream, provider, req.format, permit);
    // Wait for the first audio (or the error) before answering, so a provider that refuses
    // gets a proper error status instead of a truncated 200.
    let first = body.next_chunk().await?;
    debug!(provider = provider.as_str(), format = ?req.format, "synthesis streaming");
    let rest = futures_util::stream::unfold(body, |mut b| async move {
        match b.next_chunk().await {
            Ok(Some(bytes)) => Some((Ok(bytes), b)),
            Ok(None) => None,
            Err(e) => {
                warn!(error = %e, "synthesis failed mid-stream; response cut short");
                Some((Err(std::io::Error::other(e.to_string())), b))
            }
        }
    });
    let chunks = futures_util::stream::iter(first.map(Ok)).chain(rest);
    Ok(([(CONTENT_TYPE, req.format.content_type())], Body::from_stream(chunks)).into_response())
}

fn closed(provider: ProviderId) -> TtsApiError {
    TtsApiError::Provider { provider, error: SpeechError::Closed { provider: provider_name(provider) } }
}

/// Provider events turned into encoded body chunks; holds the caller's permit until dropped.
pub struct BodyStream {
    events: mpsc::Receiver<TtsEvent>,
    /// Kept so the provider sees the input open until we are done (closing it cancels).
    _input: mpsc::Sender<TtsInput>,
    encoder: AudioEncoder,
    provider: ProviderId,
    finished: bool,
    _permit: Permit,
}

impl BodyStream {
    pub fn new(stream: TtsStream, provider: ProviderId, format: AudioFormat, permit: Permit) -> Self {
        Self {
            events: stream.events,
            _input: stream.input,
            encoder: AudioEncoder::new(format),
            provider,
            finished: false,
            _permit: permit,
        }
    }

    /// The next non-empty chunk of the body; `None` at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, TtsApiError> {
        let mut out = Vec::new();
        while !self.finished {
            let ev = self.events.recv().await;
            let res = match ev {
                Some(TtsEvent::Pcm { samples, rate }) => self.encoder.push(Audio::Pcm(&samples, rate), &mut out),
                Some(TtsEvent::Mulaw8k { bytes }) => self.encoder.push(Audio::Mulaw8k(&bytes), &mut out),
                Some(TtsEvent::Done) => {
                    self.finished = true;
                    self.encoder.finish(&mut out)
                }
                Some(TtsEvent::Error(error)) => {
                    self.finished = true;
                    return Err(TtsApiError::Provider { provider: self.provider, error });
                }
                None => {
                    self.finished = true;
                    return Err(closed(self.provider));
                }
            };
            res.map_err(|e| TtsApiError::App(AppError::Internal(e.into())))?;
            if !out.is_empty() {
                return Ok(Some(Bytes::from(out)));
            }
        }
        Ok(None)
    }
}

// ---------------------------------------------------------------------------------------------
// GET /tts/voices/{id}/preview

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PreviewParams {
    pub provider: Option<String>,
    pub format: Option<AudioFormat>,
}

#[utoipa::path(get, path = "/api/v1/tts/voices/{id}/preview", tag = "tts",
    params(("id" = String, Path, description = "a voice id from /tts/voices"), PreviewParams),
    responses(
        (status = 200, description = "A short sample (`x-cache: hit|miss`)",
            content(("audio/wav"), ("audio/L16;rate=16000;channels=1"), ("audio/basic"), ("audio/ogg; codecs=opus"))),
        (status = 422, body = ApiErrorBody), (status = 429, body = ApiErrorBody), (status = 502, body = ApiErrorBody)))]
pub async fn preview(
    State(state): State<AppState>,
    caller: TtsCaller,
    Path(voice): Path<String>,
    Query(params): Query<PreviewParams>,
) -> Result<Response, TtsApiError> {
    let explicit = params.provider.as_deref().map(parse_provider).transpose()?;
    let provider = state.tts_api.resolve(&state.config.tts_api, explicit, None)?;
    let format = params.format.unwrap_or(AudioFormat::Wav);
    let key: PreviewKey = (provider, voice.clone(), format);
    let cached = {
        let cache = state.tts_api.previews.lock().expect("preview cache lock is never poisoned");
        cache.iter().find(|(k, _)| *k == key).map(|(_, b)| b.clone())
    };
    let (audio, hit) = match cached {
        Some(b) => (b, true),
        None => {
            let permit = state.tts_api.limiter.acquire(&caller.key_id)?;
            let text = state.config.tts_api.preview_text.clone();
            let stream = open_stream(&state, provider, Some(voice), None, format, "preview").await?;
            stream.input.send(TtsInput::Text(text)).await.map_err(|_| closed(provider))?;
            stream.input.send(TtsInput::Finish).await.map_err(|_| closed(provider))?;
            let mut body = BodyStream::new(stream, provider, format, permit);
            let mut all = Vec::new();
            while let Some(chunk) = body.next_chunk().await? {
                all.extend_from_slice(&chunk);
            }
            if format == AudioFormat::Wav && all.len() >= 44 {
                // Buffered whole: the real sizes replace the streaming header's open ones.
                let data = (all.len() - 44) as u32;
                all[4..8].copy_from_slice(&(data + 36).to_le_bytes());
                all[40..44].copy_from_slice(&data.to_le_bytes());
            }
            let bytes = Bytes::from(all);
            let mut cache = state.tts_api.previews.lock().expect("preview cache lock is never poisoned");
            if cache.len() >= PREVIEW_CACHE {
                cache.pop_front();
            }
            cache.push_back((key, bytes.clone()));
            (bytes, false)
        }
    };
    Ok((
        [
            (CONTENT_TYPE, format.content_type()),
            (CACHE_CONTROL, "private, max-age=3600"),
            (axum::http::HeaderName::from_static("x-cache"), if hit { "hit" } else { "miss" }),
        ],
        audio,
    )
        .into_response())
}
