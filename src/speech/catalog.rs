//! The TTS catalog: which providers this deployment can speak with, their voices, and the
//! priced tiers calls and API clients choose from.
//!
//! espeak-ng's voices come from the engine itself. Network providers' lists come from their
//! APIs (ElevenLabs `GET /v1/voices`; an OpenAI-compatible server's `GET /v1/audio/voices`
//! when it has one, else the documented OpenAI voices) and are cached for
//! `tts_api.voice_cache_ttl`. When a refresh fails, the last list is served marked `stale`, so
//! a provider outage does not empty a voice picker.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use utoipa::ToSchema;
use tracing::{debug, warn};

use super::SpeechError;
use super::providers::{SpeechConfig, TtsChoice};
use super::tts::TtsProvider;
use super::tts::elevenlabs::{ElevenLabsConfig, ElevenLabsTts};
use super::tts::espeak::{self, EspeakTts};
use super::tts::null::ToneTts;
use super::tts::openai::{OpenAiTts, OpenAiTtsConfig};

/// How long a provider check or a voice-list fetch may take before the provider counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// A TTS provider as the API names it (`espeak`, `elevenlabs`, `openai`, `tone`), the same
/// names `speech.tts` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderId {
    Espeak,
    Elevenlabs,
    Openai,
    Tone,
}

impl ProviderId {
    pub const ALL: [ProviderId; 4] = [Self::Espeak, Self::Elevenlabs, Self::Openai, Self::Tone];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Espeak => "espeak",
            Self::Elevenlabs => "elevenlabs",
            Self::Openai => "openai",
            Self::Tone => "tone",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Rates the provider produces natively (we resample to any other).
    pub fn sample_rates(self) -> &'static [u32] {
        match self {
            Self::Espeak => &[22_050],
            // The output formats its API offers.
            Self::Elevenlabs => &[8_000, 16_000, 22_050, 24_000, 44_100],
            Self::Openai => &[24_000],
            Self::Tone => &[8_000],
        }
    }
}

impl From<TtsChoice> for ProviderId {
    fn from(c: TtsChoice) -> Self {
        match c {
            TtsChoice::Espeak => Self::Espeak,
            TtsChoice::Elevenlabs => Self::Elevenlabs,
            TtsChoice::Openai => Self::Openai,
            TtsChoice::Tone => Self::Tone,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration and pricing

/// `[tts_api]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TtsApiConfig {
    /// Longest text one request or utterance may carry, in characters.
    pub max_text_chars: usize,
    /// Syntheses (requests or open sockets) one API key may run at once.
    pub max_concurrent_per_key: usize,
    #[serde(with = "humantime_serde")]
    pub voice_cache_ttl: Duration,
    pub preview_text: String,
    pub default_tier: String,
    pub tiers: BTreeMap<String, TierConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    #[serde(default)]
    pub description: String,
    /// In order of preference; the first configured one speaks.
    pub providers: Vec<ProviderId>,
    /// Price of one minute of synthesized audio, in the deployment's currency.
    pub price_per_minute: f64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown TTS tier {0:?}")]
pub struct UnknownTier(pub String);

impl TtsApiConfig {
    /// What `seconds` of audio synthesized on `tier` cost (call logs use this for the AI cost
    /// of a call). `None` picks the default tier.
    pub fn price_tts_seconds(&self, tier: Option<&str>, seconds: f64) -> Result<f64, UnknownTier> {
        let name = tier.unwrap_or(&self.default_tier);
        let tier = self.tiers.get(name).ok_or_else(|| UnknownTier(name.to_owned()))?;
        Ok(tier.price_per_minute * seconds.max(0.0) / 60.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Voices

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VoiceGender {
    Male,
    Female,
    Neutral,
}

/// One voice of one provider.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct VoiceInfo {
    /// What `voice` takes in a synthesis request.
    pub id: String,
    pub name: String,
    pub provider: ProviderId,
    /// The main language tag, when the provider says.
    pub language: Option<String>,
    /// Every language tag the voice speaks, main one first.
    pub languages: Vec<String>,
    pub gender: Option<VoiceGender>,
    pub sample_rates: Vec<u32>,
}

impl VoiceInfo {
    /// `en` matches `en`, `en-us` and `en-GB`; `en-us` matches only `en-us` (case-insensitive).
    pub fn speaks(&self, language: &str) -> bool {
        let want = language.to_ascii_lowercase();
        self.languages.iter().any(|l| {
            let l = l.to_ascii_lowercase();
            l == want || l.strip_prefix(&want).is_some_and(|rest| rest.starts_with('-'))
        })
    }
}

/// A provider's voices and whether they are fresh.
#[derive(Debug, Clone, PartialEq)]
pub struct VoiceList {
    pub voices: Arc<Vec<VoiceInfo>>,
    /// Served from cache because the provider could not be reached.
    pub stale: bool,
    /// How old the list is.
    pub age: Duration,
}

/// The state of one provider, for `GET /tts/providers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderStatus {
    Usable,
    MissingKey,
    Down,
}

// ---------------------------------------------------------------------------------------------
// The catalog

struct Cached {
    voices: Arc<Vec<VoiceInfo>>,
    fetched: Instant,
}

/// Every TTS provider this deployment can build, with the voice cache. Cheap to clone.
#[derive(Clone)]
pub struct TtsCatalog {
    inner: Arc<Inner>,
}

struct Inner {
    speech: SpeechConfig,
    /// Providers that could be built; a missing one failed to start (see `build_errors`).
    providers: HashMap<ProviderId, Arc<dyn TtsProvider>>,
    build_errors: HashMap<ProviderId, SpeechError>,
    http: reqwest::Client,
    ttl: Duration,
    /// One lock per provider: concurrent refreshes of one list wait for the first.
    cache: HashMap<ProviderId, Mutex<Option<Cached>>>,
}

impl TtsCatalog {
    /// Builds every provider the speech config describes. A provider that cannot be built is
    /// reported `down` with its reason instead of failing the server.
    pub fn new(speech: &SpeechConfig, ttl: Duration) -> Self {
        let mut providers: HashMap<ProviderId, Arc<dyn TtsProvider>> = HashMap::new();
        let mut build_errors = HashMap::new();
        for id in ProviderId::ALL {
            let built: Result<Arc<dyn TtsProvider>, SpeechError> = match id {
                ProviderId::Espeak => EspeakTts::new(speech.espeak.clone()).map(|p| Arc::new(p) as _),
                ProviderId::Elevenlabs => Ok(Arc::new(ElevenLabsTts::new(speech.elevenlabs.clone()))),
                ProviderId::Openai => OpenAiTts::new(speech.openai_tts.clone()).map(|p| Arc::new(p) as _),
                ProviderId::Tone => Ok(Arc::new(ToneTts)),
            };
            match built {
                Ok(p) => {
                    providers.insert(id, p);
                }
                Err(e) => {
                    warn!(provider = id.as_str(), error = %e, "TTS provider unavailable");
                    build_errors.insert(id, e);
                }
            }
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CHECK_TIMEOUT)
            .timeout(CHECK_TIMEOUT)
            .build()
            .unwrap_or_default();
        let cache = ProviderId::ALL.into_iter().map(|p| (p, Mutex::new(None))).collect();
        Self { inner: Arc::new(Inner { speech: speech.clone(), providers, build_errors, http, ttl, cache }) }
    }

    /// The provider calls use (`speech.tts`).
    pub fn default_provider(&self) -> ProviderId {
        self.inner.speech.tts.into()
    }

    /// Providers worth listing: the offline ones, the network ones (configured or not, so a
    /// missing key shows), and `tone` only where the config selects it.
    pub fn listed(&self) -> Vec<ProviderId> {
        ProviderId::ALL
            .into_iter()
            .filter(|p| *p != ProviderId::Tone || self.default_provider() == ProviderId::Tone)
            .collect()
    }

    /// True when the provider has what it needs to be tried (engine started, key present).
    pub fn is_configured(&self, id: ProviderId) -> bool {
        self.inner.providers.contains_key(&id) && self.missing_key(id).is_none()
    }

    fn missing_key(&self, id: ProviderId) -> Option<&'static str> {
        let s = &self.inner.speech;
        match id {
            ProviderId::Elevenlabs if s.elevenlabs.api_key.as_deref().is_none_or(str::is_empty) => {
                Some("speech.elevenlabs.api_key is not set")
            }
            ProviderId::Openai if official_openai(&s.openai_tts) && s.openai_tts.api_key.as_deref().is_none_or(str::is_empty) => {
                Some("speech.openai_tts.api_key is not set")
            }
            _ => None,
        }
    }

    pub fn provider(&self, id: ProviderId) -> Result<Arc<dyn TtsProvider>, SpeechError> {
        if let Some(reason) = self.missing_key(id) {
            return Err(SpeechError::NotConfigured { provider: provider_name(id), reason: reason.to_owned() });
        }
        match self.inner.providers.get(&id) {
            Some(p) => Ok(p.clone()),
            None => Err(self.inner.build_errors.get(&id).cloned().unwrap_or(SpeechError::NotConfigured {
                provider: provider_name(id),
                reason: "not built".into(),
            })),
        }
    }

    /// Usable, missing key, or down (with the reason).
    pub async fn status(&self, id: ProviderId) -> (ProviderStatus, Option<String>) {
        if let Some(reason) = self.missing_key(id) {
            return (ProviderStatus::MissingKey, Some(reason.to_owned()));
        }
        let provider = match self.provider(id) {
            Ok(p) => p,
            Err(e) => return (ProviderStatus::Down, Some(e.to_string())),
        };
        match tokio::time::timeout(CHECK_TIMEOUT, provider.check()).await {
            Ok(Ok(())) => (ProviderStatus::Usable, None),
            Ok(Err(e)) => (ProviderStatus::Down, Some(e.to_string())),
            Err(_) => (ProviderStatus::Down, Some(format!("no answer within {CHECK_TIMEOUT:?}"))),
        }
    }

    /// The voices of `id`: fresh from cache, fetched, or stale from cache when the fetch fails.
    pub async fn voices(&self, id: ProviderId) -> Result<VoiceList, SpeechError> {
        let slot = self.inner.cache.get(&id).expect("the cache has a slot for every provider");
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref()
            && c.fetched.elapsed() < self.inner.ttl
        {
            return Ok(VoiceList { voices: c.voices.clone(), stale: false, age: c.fetched.elapsed() });
        }
        match self.fetch(id).await {
            Ok(voices) => {
                let voices = Arc::new(voices);
                *cached = Some(Cached { voices: voices.clone(), fetched: Instant::now() });
                Ok(VoiceList { voices, stale: false, age: Duration::ZERO })
            }
            Err(e) => match cached.as_ref() {
                Some(c) => {
                    warn!(provider = id.as_str(), error = %e, "voice list refresh failed; serving the cached list");
                    Ok(VoiceList { voices: c.voices.clone(), stale: true, age: c.fetched.elapsed() })
                }
                None => Err(e),
            },
        }
    }

    async fn fetch(&self, id: ProviderId) -> Result<Vec<VoiceInfo>, SpeechError> {
        match id {
            ProviderId::Espeak => {
                let voices = tokio::task::spawn_blocking(espeak::list_voices).await.map_err(|e| {
                    SpeechError::Engine { provider: provider_name(id), reason: format!("voice listing task: {e}") }
                })??;
                Ok(espeak_voices(&voices))
            }
            ProviderId::Elevenlabs => {
                self.provider(id)?;
                fetch_elevenlabs(&self.inner.http, &self.inner.speech.elevenlabs).await
            }
            ProviderId::Openai => {
                self.provider(id)?;
                fetch_openai(&self.inner.http, &self.inner.speech.openai_tts).await
            }
            ProviderId::Tone => Ok(vec![VoiceInfo {
                id: "tone".into(),
                name: "Tone (speech-like test signal)".into(),
                provider: id,
                language: None,
                languages: Vec::new(),
                gender: None,
                sample_rates: id.sample_rates().to_vec(),
            }]),
        }
    }
}

/// The name providers use in their errors (`SpeechError::provider`).
pub fn provider_name(id: ProviderId) -> &'static str {
    match id {
        ProviderId::Espeak => "espeak-ng",
        ProviderId::Elevenlabs => "elevenlabs",
        ProviderId::Openai => "openai-tts",
        ProviderId::Tone => "tone",
    }
}

fn official_openai(c: &OpenAiTtsConfig) -> bool {
    reqwest::Url::parse(&c.base_url).map(|u| u.host_str() == Some("api.openai.com")).unwrap_or(false)
}

/// Voice ids are the primary language tag (`en-us`), which is what people type and what the
/// engine accepts; where two voices share one, the later ones use their unique name instead.
fn espeak_voices(voices: &[espeak::Voice]) -> Vec<VoiceInfo> {
    let mut seen = std::collections::HashSet::new();
    voices
        .iter()
        .map(|v| {
            let primary = v.languages.first().cloned();
            let id = match &primary {
                Some(l) if seen.insert(l.clone()) => l.clone(),
                _ => v.name.clone(),
            };
            VoiceInfo {
                id,
                name: v.name.replace('_', " "),
                provider: ProviderId::Espeak,
                language: primary,
                languages: v.languages.clone(),
                gender: match v.gender {
                    espeak::Gender::Male => Some(VoiceGender::Male),
                    espeak::Gender::Female => Some(VoiceGender::Female),
                    espeak::Gender::Unspecified => None,
                },
                sample_rates: ProviderId::Espeak.sample_rates().to_vec(),
            }
        })
        .collect()
}

/// `wss://api.elevenlabs.io` -> `https://api.elevenlabs.io`: one setting serves both APIs.
fn http_base(base: &str) -> Result<reqwest::Url, SpeechError> {
    let mut url = reqwest::Url::parse(base).map_err(|e| SpeechError::NotConfigured {
        provider: "elevenlabs",
        reason: format!("base_url: {e}"),
    })?;
    let scheme = match url.scheme() {
        "wss" => "https",
        "ws" => "http",
        other => other,
    }
    .to_owned();
    url.set_scheme(&scheme).map_err(|()| SpeechError::NotConfigured {
        provider: "elevenlabs",
        reason: format!("base_url scheme {scheme} cannot become http(s)"),
    })?;
    Ok(url)
}

#[derive(Deserialize)]
struct ElevenLabsVoices {
    voices: Vec<ElevenLabsVoice>,
}

#[derive(Deserialize)]
struct ElevenLabsVoice {
    voice_id: String,
    name: String,
    #[serde(default)]
    labels: HashMap<String, String>,
    #[serde(default)]
    verified_languages: Vec<ElevenLabsLanguage>,
}

#[derive(Deserialize)]
struct ElevenLabsLanguage {
    language: String,
    #[serde(default)]
    locale: Option<String>,
}

async fn fetch_elevenlabs(http: &reqwest::Client, cfg: &ElevenLabsConfig) -> Result<Vec<VoiceInfo>, SpeechError> {
    const P: &str = "elevenlabs";
    let url = http_base(&cfg.base_url)?
        .join("/v1/voices")
        .map_err(|e| SpeechError::NotConfigured { provider: P, reason: format!("base_url: {e}") })?;
    let key = cfg.api_key.clone().unwrap_or_default();
    let resp = http.get(url).header("xi-api-key", key).send().await.map_err(|e| send_error(P, e))?;
    let status = resp.status().as_u16();
    match status {
        200..=299 => {}
        401 | 403 => return Err(SpeechError::Unauthorized { provider: P, status }),
        429 => return Err(SpeechError::RateLimited { provider: P }),
        _ => return Err(SpeechError::Protocol { provider: P, reason: format!("voice list: HTTP {status}") }),
    }
    let body: ElevenLabsVoices = resp
        .json()
        .await
        .map_err(|e| SpeechError::Protocol { provider: P, reason: format!("voice list: {}", e.without_url()) })?;
    debug!(count = body.voices.len(), "elevenlabs voices fetched");
    Ok(body
        .voices
        .into_iter()
        .map(|v| {
            let mut languages: Vec<String> = Vec::new();
            for l in &v.verified_languages {
                let tag = l.locale.clone().unwrap_or_else(|| l.language.clone());
                if !languages.contains(&tag) {
                    languages.push(tag);
                }
            }
            if let Some(l) = v.labels.get("language").filter(|_| languages.is_empty()) {
                languages.push(l.clone());
            }
            VoiceInfo {
                id: v.voice_id,
                name: v.name,
                provider: ProviderId::Elevenlabs,
                language: languages.first().cloned(),
                languages,
                gender: v.labels.get("gender").and_then(|g| parse_gender(g)),
                sample_rates: ProviderId::Elevenlabs.sample_rates().to_vec(),
            }
        })
        .collect())
}

fn parse_gender(g: &str) -> Option<VoiceGender> {
    match g.to_ascii_lowercase().as_str() {
        "male" => Some(VoiceGender::Male),
        "female" => Some(VoiceGender::Female),
        "neutral" | "non-binary" | "nonbinary" => Some(VoiceGender::Neutral),
        _ => None,
    }
}

/// The voices api.openai.com documents for `/v1/audio/speech`; it has no list endpoint.
const OPENAI_VOICES: [&str; 11] =
    ["alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse"];

/// Self-hosted OpenAI-compatible servers (Kokoro-FastAPI, openedai-speech, ...) answer
/// `GET /v1/audio/voices` with `{"voices": [...]}`, as names or as objects with an `id`.
#[derive(Deserialize)]
struct OpenAiVoices {
    voices: Vec<OpenAiVoice>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OpenAiVoice {
    Name(String),
    Object {
        id: String,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        language: Option<String>,
        #[serde(default)]
        gender: Option<String>,
    },
}

async fn fetch_openai(http: &reqwest::Client, cfg: &OpenAiTtsConfig) -> Result<Vec<VoiceInfo>, SpeechError> {
    const P: &str = "openai-tts";
    let voice = |id: String, name: Option<String>, language: Option<String>, gender: Option<String>| VoiceInfo {
        name: name.unwrap_or_else(|| id.clone()),
        id,
        provider: ProviderId::Openai,
        languages: language.iter().cloned().collect(),
        language,
        gender: gender.as_deref().and_then(parse_gender),
        sample_rates: ProviderId::Openai.sample_rates().to_vec(),
    };
    let documented = || OPENAI_VOICES.iter().map(|v| voice((*v).to_owned(), None, None, None)).collect();
    if official_openai(cfg) {
        return Ok(documented());
    }
    let url = reqwest::Url::parse(&cfg.base_url)
        .and_then(|u| u.join("/v1/audio/voices"))
        .map_err(|e| SpeechError::NotConfigured { provider: P, reason: format!("base_url: {e}") })?;
    let mut req = http.get(url);
    if let Some(k) = cfg.api_key.as_deref().filter(|k| !k.is_empty()) {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.map_err(|e| send_error(P, e))?;
    let status = resp.status().as_u16();
    match status {
        200..=299 => {}
        // Reachable, without a list: it takes the documented names.
        404 | 405 => return Ok(documented()),
        401 | 403 => return Err(SpeechError::Unauthorized { provider: P, status }),
        429 => return Err(SpeechError::RateLimited { provider: P }),
        _ => return Err(SpeechError::Protocol { provider: P, reason: format!("voice list: HTTP {status}") }),
    }
    let body: OpenAiVoices = resp
        .json()
        .await
        .map_err(|e| SpeechError::Protocol { provider: P, reason: format!("voice list: {}", e.without_url()) })?;
    Ok(body
        .voices
        .into_iter()
        .map(|v| match v {
            OpenAiVoice::Name(id) => voice(id, None, None, None),
            OpenAiVoice::Object { id, name, language, gender } => voice(id, name, language, gender),
        })
        .collect())
}

fn send_error(provider: &'static str, e: reqwest::Error) -> SpeechError {
    if e.is_timeout() {
        SpeechError::Timeout { provider, what: "voice list" }
    } else {
        SpeechError::Connect { provider, reason: e.without_url().to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_config() -> TtsApiConfig {
        toml::from_str(
            r#"
            max_text_chars = 100
            max_concurrent_per_key = 2
            voice_cache_ttl = "1m"
            preview_text = "hi"
            default_tier = "regular"
            [tiers.regular]
            providers = ["espeak", "openai"]
            price_per_minute = 0.006
            [tiers.premium]
            providers = ["elevenlabs"]
            price_per_minute = 0.30
            "#,
        )
        .expect("valid tts_api config")
    }

    #[test]
    fn tiers_price_seconds() {
        let c = api_config();
        let premium = c.price_tts_seconds(Some("premium"), 90.0).unwrap();
        assert!((premium - 0.45).abs() < 1e-9, "{premium}");
        let regular = c.price_tts_seconds(None, 30.0).unwrap();
        assert!((regular - 0.003).abs() < 1e-9, "{regular}");
        assert_eq!(c.price_tts_seconds(Some("gold"), 1.0), Err(UnknownTier("gold".into())));
        assert_eq!(c.tiers["regular"].providers, vec![ProviderId::Espeak, ProviderId::Openai]);
    }

    #[test]
    fn config_rejects_unknown_providers_and_keys() {
        let bad = r#"max_text_chars = 1
            max_concurrent_per_key = 1
            voice_cache_ttl = "1s"
            preview_text = ""
            default_tier = "a"
            [tiers.a]
            providers = ["polly"]
            price_per_minute = 1.0"#;
        assert!(toml::from_str::<TtsApiConfig>(bad).is_err());
        let typo = api_config_text().replace("price_per_minute = 0.30", "price_per_min = 0.30");
        assert!(toml::from_str::<TtsApiConfig>(&typo).is_err());
    }

    fn api_config_text() -> String {
        "max_text_chars = 1\nmax_concurrent_per_key = 1\nvoice_cache_ttl = \"1s\"\npreview_text = \"\"\n\
         default_tier = \"premium\"\n[tiers.premium]\nproviders = [\"elevenlabs\"]\nprice_per_minute = 0.30\n"
            .to_owned()
    }

    #[test]
    fn language_filter_matches_prefixes_only_at_subtags() {
        let v = VoiceInfo {
            id: "en-us".into(),
            name: "x".into(),
            provider: ProviderId::Espeak,
            language: Some("en-us".into()),
            languages: vec!["en-us".into(), "en".into()],
            gender: None,
            sample_rates: vec![22_050],
        };
        assert!(v.speaks("en"));
        assert!(v.speaks("EN-US"));
        assert!(!v.speaks("en-gb"));
        assert!(!v.speaks("e"));
    }

    #[test]
    fn websocket_base_becomes_http() {
        assert_eq!(http_base("wss://api.elevenlabs.io").unwrap().as_str(), "https://api.elevenlabs.io/");
        assert_eq!(http_base("ws://127.0.0.1:9/").unwrap().as_str(), "http://127.0.0.1:9/");
    }

    #[test]
    fn espeak_ids_are_unique_language_tags() {
        let voices = espeak::list_voices().expect("espeak-ng is installed");
        let list = espeak_voices(&voices);
        let ids: std::collections::HashSet<_> = list.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(ids.len(), list.len(), "ids are unique");
        assert!(ids.contains("en-us"));
    }
}
