//! Which speech providers a deployment uses, from config, and building them.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::stt::deepgram::{DeepgramConfig, DeepgramStt};
use super::stt::null::NullStt;
use super::stt::openai::{OpenAiStt, OpenAiSttConfig};
use super::stt::pocketsphinx::{PocketsphinxConfig, PocketsphinxStt};
use super::stt::SttProvider;
use super::tts::elevenlabs::{ElevenLabsConfig, ElevenLabsTts};
use super::tts::espeak::{EspeakConfig, EspeakTts};
use super::tts::fallback::FallbackTts;
use super::tts::null::ToneTts;
use super::tts::openai::{OpenAiTts, OpenAiTtsConfig};
use super::tts::TtsProvider;
use super::SpeechError;
use crate::app::Dependency;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SttChoice {
    /// Offline, in-process (the embedded default).
    Pocketsphinx,
    Deepgram,
    /// Any OpenAI-compatible `/v1/audio/transcriptions` server, per turn.
    Openai,
    /// Recognizes nothing; reports each turn as `[speech]` (load tests).
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TtsChoice {
    /// Offline, in-process (the embedded default).
    Espeak,
    Elevenlabs,
    /// Any OpenAI-compatible `/v1/audio/speech` server.
    Openai,
    /// A speech-like synthetic signal; no engine (load tests).
    Tone,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeechConfig {
    pub stt: SttChoice,
    pub tts: TtsChoice,
    /// Speaks instead when the main TTS fails before producing audio.
    #[serde(default)]
    pub tts_fallback: Option<TtsChoice>,
    #[serde(default)]
    pub pocketsphinx: PocketsphinxConfig,
    #[serde(default)]
    pub espeak: EspeakConfig,
    #[serde(default)]
    pub deepgram: DeepgramConfig,
    #[serde(default)]
    pub elevenlabs: ElevenLabsConfig,
    #[serde(default)]
    pub openai_stt: OpenAiSttConfig,
    #[serde(default)]
    pub openai_tts: OpenAiTtsConfig,
}

/// The providers calls use.
#[derive(Clone)]
pub struct SpeechProviders {
    pub stt: Arc<dyn SttProvider>,
    pub tts: Arc<dyn TtsProvider>,
}

impl SpeechProviders {
    pub fn from_config(cfg: &SpeechConfig) -> Result<Self, SpeechError> {
        let stt: Arc<dyn SttProvider> = match cfg.stt {
            SttChoice::Pocketsphinx => Arc::new(PocketsphinxStt::new(cfg.pocketsphinx.clone())),
            SttChoice::Deepgram => Arc::new(DeepgramStt::new(cfg.deepgram.clone())),
            SttChoice::Openai => Arc::new(OpenAiStt::new(cfg.openai_stt.clone())?),
            SttChoice::Null => Arc::new(NullStt),
        };
        let mut tts = build_tts(cfg, cfg.tts)?;
        if let Some(fallback) = cfg.tts_fallback.filter(|f| *f != cfg.tts) {
            tts = Arc::new(FallbackTts::new(tts, build_tts(cfg, fallback)?));
        }
        Ok(Self { stt, tts })
    }

    /// Readiness checks for `/ready`.
    pub fn dependencies(&self) -> Vec<Arc<dyn Dependency>> {
        vec![Arc::new(SttCheck(self.stt.clone())), Arc::new(TtsCheck(self.tts.clone()))]
    }
}

fn build_tts(cfg: &SpeechConfig, choice: TtsChoice) -> Result<Arc<dyn TtsProvider>, SpeechError> {
    Ok(match choice {
        TtsChoice::Espeak => Arc::new(EspeakTts::new(cfg.espeak.clone())?),
        TtsChoice::Elevenlabs => Arc::new(ElevenLabsTts::new(cfg.elevenlabs.clone())),
        TtsChoice::Openai => Arc::new(OpenAiTts::new(cfg.openai_tts.clone())?),
        TtsChoice::Tone => Arc::new(ToneTts),
    })
}

struct SttCheck(Arc<dyn SttProvider>);
struct TtsCheck(Arc<dyn TtsProvider>);

#[async_trait]
impl Dependency for SttCheck {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn kind(&self) -> &'static str {
        "stt"
    }
    async fn check(&self) -> Result<(), String> {
        self.0.check().await.map_err(|e| e.to_string())
    }
}

#[async_trait]
impl Dependency for TtsCheck {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn kind(&self) -> &'static str {
        "tts"
    }
    async fn check(&self) -> Result<(), String> {
        self.0.check().await.map_err(|e| e.to_string())
    }
}
