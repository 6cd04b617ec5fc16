//! Typed configuration: the embedded `config/default.toml`, then an optional `--config` file,
//! then `SWITCHBOARD_<SECTION>__<KEY>` environment variables, merged key by key. Unknown keys
//! and bad values are errors that name the key and where it came from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

/// The shipped defaults, compiled in so `switchboard serve` works from any directory.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config/default.toml");
const ENV_PREFIX: &str = "SWITCHBOARD_";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub persistence: PersistenceConfig,
    pub auth: AuthConfig,
    pub calls: CallsConfig,
    pub twilio: TwilioConfig,
    /// Browser calls (WHIP-style signalling, ICE addresses, call tokens).
    pub webrtc: crate::transport::webrtc::WebRtcConfig,
    pub speech: crate::speech::providers::SpeechConfig,
    pub flows: FlowsConfig,
    /// The voice catalog and synthesis API (`/api/v1/tts/*`, `/ws/tts`).
    pub tts_api: crate::speech::catalog::TtsApiConfig,
    /// LLM mode (an OpenAI-compatible chat model drives calls). Unset `base_url`/`model`:
    /// not configured, and flows that hand over to the LLM get a provider error.
    #[serde(default)]
    pub llm: crate::dialog::llm::LlmConfig,
    /// The call-center control plane (queues, offers, cost rates).
    pub center: CenterConfig,
    /// Live alert rules and their thresholds.
    #[serde(default)]
    pub alerts: crate::monitor::alerts::AlertsConfig,
}

/// The call-center control plane: queue timing and the rates calls are costed at.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CenterConfig {
    /// A browser agent has this long to accept an offered call before it moves on.
    #[serde(with = "humantime_serde")]
    pub offer_timeout: Duration,
    /// Waiting callers hear their position this often.
    #[serde(with = "humantime_serde")]
    pub announce_interval: Duration,
    /// Commands waiting for the call distributor before senders are told it is busy.
    pub channel_capacity: usize,
    /// Cost of speech recognition per second of audio streamed to it.
    pub stt_cost_per_second: f64,
    /// Cost of speech synthesis per second of audio played.
    pub tts_cost_per_second: f64,
    /// Cost of an agent per minute on a call.
    pub agent_cost_per_minute: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowsConfig {
    /// Directory of `*.toml` flows. When it does not exist, the built-in demo flow is used.
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallsConfig {
    /// New calls beyond this are refused with a clear reason.
    pub max_concurrent: usize,
    /// A call with no caller audio for this long is ended.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub max_duration: Duration,
    /// How far ahead of the far end's playout bot audio is sent (bounded so a barge-in
    /// `clear` has little to throw away, and the far end never gets a whole utterance at once).
    #[serde(with = "humantime_serde")]
    pub playout_lead: Duration,
    pub vad: VadSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VadSettings {
    pub engine: VadEngineKind,
    /// Speech must last this long before it counts as started.
    #[serde(with = "humantime_serde")]
    pub start: Duration,
    /// Silence must last this long before speech counts as ended (the end of a turn).
    #[serde(with = "humantime_serde")]
    pub stop: Duration,
    /// Frames quieter than this never count as speech.
    pub min_volume_dbfs: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VadEngineKind {
    Webrtc,
    Earshot,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// When set, `X-Twilio-Signature` is required and checked on webhooks, and hang-ups and
    /// transfers go through the REST API.
    #[serde(default)]
    pub account_sid: Option<String>,
    #[serde(default)]
    pub auth_token: Option<String>,
    /// The REST API base (tests point it at a local fake).
    pub api_base: String,
    /// The tenant phone calls belong to.
    pub tenant: String,
    /// Largest WebSocket message accepted on a media stream.
    pub max_message_bytes: usize,
    /// The flow for calls whose number no flow claims.
    #[serde(default)]
    pub default_flow: Option<String>,
}

impl std::fmt::Debug for TwilioConfig {
    // The auth token signs webhooks and authorizes REST calls: never log it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioConfig")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &self.auth_token.as_ref().map(|_| "***"))
            .field("api_base", &self.api_base)
            .field("tenant", &self.tenant)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("default_flow", &self.default_flow)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    #[serde(default)]
    pub public_url: Option<String>,
    /// Behind a reverse proxy: take the client's address from `X-Forwarded-For` / `Forwarded`
    /// and the URL Twilio signed from `X-Forwarded-Proto` / `X-Forwarded-Host`. Off unless the
    /// only way in is through a proxy that sets them, or any client could claim any address.
    pub trust_forwarded_headers: bool,
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    pub log_format: LogFormat,
    pub log_filter: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    #[serde(default)]
    pub url: Option<String>,
    pub max_connections: u32,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub ready_timeout: Duration,
}

impl std::fmt::Debug for DatabaseConfig {
    // A database URL may carry a password; it must never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("ready_timeout", &self.ready_timeout)
            .finish()
    }
}

/// `postgres://user:secret@host/db` -> `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistenceConfig {
    pub queue_capacity: usize,
    pub batch_size: usize,
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    pub max_backlog: usize,
    #[serde(with = "humantime_serde")]
    pub retry_backoff: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub demo_tenant: Option<String>,
    /// Give a demo tenant without departments the demo flow's departments and a browser agent.
    #[serde(default)]
    pub demo_seed: bool,
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{origin}: {message}")]
    Syntax { origin: String, message: String },
    #[error("{origin}: key `{key}`: {message}")]
    Invalid { origin: String, key: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
}

/// One layer of configuration and where it came from, kept for error messages.
struct Layer {
    origin: Origin,
    table: toml::Table,
}

enum Origin {
    Embedded,
    File { path: PathBuf, text: String },
    Env { vars: Vec<(String, String)> },
}

impl Config {
    /// Loads the embedded default, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(file, std::env::vars())
    }

    /// As [`Config::load`], with the environment passed in (tests use this).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut layers = vec![Layer {
            origin: Origin::Embedded,
            table: parse_table(EMBEDDED_DEFAULT, "embedded config/default.toml")?,
        }];
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
            let table = parse_table(&text, &path.display().to_string())?;
            layers.push(Layer { origin: Origin::File { path: path.to_path_buf(), text }, table });
        }
        // `SWITCHBOARD_CONFIG` names the file (the CLI reads it); it is not a key.
        let vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k != "SWITCHBOARD_CONFIG")
            .collect();
        if !vars.is_empty() {
            layers.push(Layer { table: env_table(&vars)?, origin: Origin::Env { vars } });
        }

        let mut merged = toml::Table::new();
        for layer in &layers {
            merge(&mut merged, &layer.table);
        }
        let deserializer = toml::Value::Table(merged);
        serde_path_to_error::deserialize::<_, Config>(deserializer).map_err(|err| {
            let key = err.path().to_string();
            // toml appends "in `section`" on a second line; the key path already says that.
            let message = err.inner().to_string().lines().next().unwrap_or_default().trim().to_string();
            let unknown_field = unknown_field_name(&message);
            let full_key = match (&unknown_field, key.as_str()) {
                (Some(field), ".") => field.clone(),
                (Some(field), parent) if !parent.ends_with(field.as_str()) => {
                    format!("{parent}.{field}")
                }
                _ => key,
            };
            let origin = blame(&layers, &full_key);
            ConfigError::Invalid { origin, key: full_key, message }
        })
    }
}

fn parse_table(text: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>().map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        ConfigError::Syntax {
            origin: match line {
                Some(l) => format!("{origin} line {l}"),
                None => origin.to_string(),
            },
            message: e.message().to_string(),
        }
    })
}

/// `SWITCHBOARD_SERVER__LISTEN=...` becomes `server.listen`. Values that parse as TOML
/// (numbers, booleans, quoted strings, arrays) are taken as such; anything else is a string.
fn env_table(vars: &[(String, String)]) -> Result<toml::Table, ConfigError> {
    let mut root = toml::Table::new();
    for (var, raw) in vars {
        let path: Vec<String> = var[ENV_PREFIX.len()..]
            .split("__")
            .map(|p| p.to_ascii_lowercase())
            .collect();
        if path.len() < 2 || path.iter().any(String::is_empty) {
            return Err(ConfigError::Env {
                var: var.clone(),
                message: "expected SWITCHBOARD_<SECTION>__<KEY>".into(),
            });
        }
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.clone()));
        let mut table = &mut root;
        for part in &path[..path.len() - 1] {
            let entry = table
                .entry(part.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = match entry {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(ConfigError::Env {
                        var: var.clone(),
                        message: format!("`{part}` is both a value and a section"),
                    });
                }
            };
        }
        table.insert(path[path.len() - 1].clone(), value);
    }
    Ok(root)
}

fn merge(into: &mut toml::Table, from: &toml::Table) {
    for (key, value) in from {
        match (into.get_mut(key), value) {
            (Some(toml::Value::Table(dst)), toml::Value::Table(src)) => merge(dst, src),
            _ => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}

fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

/// Names the last layer that set `key` (a dotted path), with a line number for files.
fn blame(layers: &[Layer], key: &str) -> String {
    let parts: Vec<&str> = key.split('.').collect();
    for layer in layers.iter().rev() {
        if !contains_path(&layer.table, &parts) {
            continue;
        }
        return match &layer.origin {
            Origin::Embedded => "embedded config/default.toml".to_string(),
            Origin::File { path, text } => match key_line(text, &parts) {
                Some(line) => format!("{} line {line}", path.display()),
                None => path.display().to_string(),
            },
            Origin::Env { vars } => {
                let wanted = format!("{ENV_PREFIX}{}", parts.join("__")).to_ascii_uppercase();
                match vars.iter().find(|(k, _)| k.to_ascii_uppercase() == wanted) {
                    Some((k, _)) => format!("environment variable {k}"),
                    None => "environment".to_string(),
                }
            }
        };
    }
    "configuration".to_string()
}

fn contains_path(table: &toml::Table, parts: &[&str]) -> bool {
    match parts {
        [] => true,
        [first, rest @ ..] => match table.get(*first) {
            Some(toml::Value::Table(t)) => contains_path(t, rest),
            Some(_) => rest.is_empty(),
            None => false,
        },
    }
}

fn key_line(text: &str, parts: &[&str]) -> Option<usize> {
    let doc = text.parse::<toml_edit::Document<String>>().ok()?;
    let mut item = doc.as_item();
    let mut span = None;
    for part in parts {
        let table = item.as_table_like()?;
        let (key, value) = table.get_key_value(part)?;
        span = key.span().or_else(|| value.span());
        item = value;
    }
    span.map(|s| line_of(text, s.start))
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn embedded_default_loads() {
        let cfg = Config::load_with_env(None, no_env()).unwrap();
        assert_eq!(cfg.server.listen, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
        assert_eq!(cfg.server.drain_timeout, Duration::from_secs(10));
        assert_eq!(cfg.server.log_format, LogFormat::Human);
        assert!(cfg.database.url.is_none());
    }

    #[test]
    fn file_then_env_override() {
        let f = file("[server]\nlisten = \"127.0.0.1:9000\"\ndrain_timeout = \"3s\"\n");
        let env = vec![
            ("SWITCHBOARD_SERVER__LISTEN".to_string(), "0.0.0.0:7000".to_string()),
            ("SWITCHBOARD_PERSISTENCE__BATCH_SIZE".to_string(), "64".to_string()),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let cfg = Config::load_with_env(Some(f.path()), env).unwrap();
        assert_eq!(cfg.server.listen, "0.0.0.0:7000".parse::<SocketAddr>().unwrap());
        assert_eq!(cfg.server.drain_timeout, Duration::from_secs(3));
        assert_eq!(cfg.persistence.batch_size, 64);
    }

    #[test]
    fn unknown_key_in_file_names_key_file_and_line() {
        let f = file("# comment\n[server]\nlisten = \"127.0.0.1:9000\"\nlisen = \"oops\"\n");
        let err = Config::load_with_env(Some(f.path()), no_env()).unwrap_err().to_string();
        assert!(err.contains("server.lisen"), "{err}");
        assert!(err.contains(&format!("{} line 4", f.path().display())), "{err}");
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn bad_value_names_key() {
        let f = file("[server]\ndrain_timeout = \"soon\"\n");
        let err = Config::load_with_env(Some(f.path()), no_env()).unwrap_err().to_string();
        assert!(err.contains("server.drain_timeout"), "{err}");
        assert!(err.contains("line 2"), "{err}");
        let f = file("[server]\nlog_format = \"xml\"\n");
        let err = Config::load_with_env(Some(f.path()), no_env()).unwrap_err().to_string();
        assert!(err.contains("server.log_format") && err.contains("xml"), "{err}");
    }

    #[test]
    fn unknown_section_and_env_errors() {
        let f = file("[sever]\nlisten = \"x\"\n");
        let err = Config::load_with_env(Some(f.path()), no_env()).unwrap_err().to_string();
        assert!(err.contains("sever") && err.contains("line 1"), "{err}");
        let env = vec![("SWITCHBOARD_SERVER__LISTEN".to_string(), "nowhere".to_string())];
        let err = Config::load_with_env(None, env).unwrap_err().to_string();
        assert!(err.contains("SWITCHBOARD_SERVER__LISTEN") && err.contains("server.listen"), "{err}");
    }

    #[test]
    fn the_config_file_variable_is_not_a_key() {
        let env = vec![("SWITCHBOARD_CONFIG".to_string(), "/etc/switchboard.toml".to_string())];
        assert!(Config::load_with_env(None, env).is_ok());
        let env = vec![("SWITCHBOARD_LISTEN".to_string(), "x".to_string())];
        let err = Config::load_with_env(None, env).unwrap_err().to_string();
        assert!(err.contains("SWITCHBOARD_LISTEN"), "{err}");
    }

    #[test]
    fn syntax_error_names_line() {
        let f = file("[server]\nlisten = \n");
        let err = Config::load_with_env(Some(f.path()), no_env()).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn llm_section_defaults_to_not_configured_and_takes_overrides() {
        let cfg = Config::load_with_env(None, no_env()).unwrap();
        assert!(!cfg.llm.is_configured());
        let f = file("[llm]\nbase_url = \"http://127.0.0.1:8081/v1\"\nmodel = \"qwen2.5-7b\"\napi_key = \"sk-hidden\"\nfirst_token_timeout = \"3s\"\n");
        let env = vec![("SWITCHBOARD_LLM__TEMPERATURE".to_string(), "0.2".to_string())];
        let cfg = Config::load_with_env(Some(f.path()), env).unwrap();
        assert!(cfg.llm.is_configured());
        assert_eq!(cfg.llm.first_token_timeout, Duration::from_secs(3));
        assert_eq!(cfg.llm.temperature, Some(0.2));
        assert!(!format!("{cfg:?}").contains("sk-hidden"));
        let f = file("[llm]\nmodle = \"x\"\n");
        let err = Config::load_with_env(Some(f.path()), no_env()).unwrap_err().to_string();
        assert!(err.contains("llm.modle") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn database_url_is_redacted_in_debug() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    }
}
