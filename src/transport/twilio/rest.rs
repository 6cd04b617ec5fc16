//! Twilio REST client for call control: hang up, redirect to new TwiML (the transfer
//! trigger), and place outbound calls.
//!
//! Closing the media socket does not end a `<Connect><Stream>` call (Twilio just continues
//! the TwiML), so hang-up must go through this client. A 404 / error 20404 on hang-up means
//! the call is already gone, which is the outcome the caller wanted: it is reported as
//! [`HangupOutcome::AlreadyGone`], not as an error.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use tracing::debug;

use super::protocol::CallSid;

/// Twilio's "resource not found" error code.
pub const ERROR_NOT_FOUND: u32 = 20404;

fn default_base_url() -> String {
    "https://api.twilio.com".to_owned()
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioRestConfig {
    pub account_sid: String,
    pub auth_token: String,
    /// Without a trailing slash; tests point this at a local fake.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Whole-request timeout, e.g. `"10s"`.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl TwilioRestConfig {
    pub fn new(account_sid: impl Into<String>, auth_token: impl Into<String>) -> Self {
        Self {
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
            base_url: default_base_url(),
            timeout: default_timeout(),
        }
    }
}

/// Never prints the token: configs end up in logs.
impl fmt::Debug for TwilioRestConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioRestConfig")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Debug, Error)]
pub enum RestError {
    /// Twilio answered with an error document (`{"code":…,"message":…,"more_info":…}`).
    #[error("twilio HTTP {status}: error {code:?}: {message}")]
    Api {
        status: u16,
        code: Option<u32>,
        message: String,
        more_info: Option<String>,
    },
    #[error("twilio request failed: {0}")]
    Transport(#[source] reqwest::Error),
    #[error("twilio answered HTTP {status} with an unreadable body: {reason}")]
    Decode { status: u16, reason: String },
    /// Sids are put into URL paths, so anything but ASCII alphanumerics is refused.
    #[error("invalid {what} sid {sid:?}")]
    InvalidSid { what: &'static str, sid: String },
    #[error("invalid base url {0:?}")]
    InvalidBaseUrl(String),
}

impl RestError {
    /// Twilio's error code, when the failure came from Twilio itself.
    pub fn code(&self) -> Option<u32> {
        match self {
            RestError::Api { code, .. } => *code,
            _ => None,
        }
    }

    /// The call (or other resource) does not exist (any more).
    pub fn is_not_found(&self) -> bool {
        matches!(self, RestError::Api { status: 404, .. }) || self.code() == Some(ERROR_NOT_FOUND)
    }
}

/// What [`TwilioRest::hangup`] achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HangupOutcome {
    /// Twilio accepted `Status=completed`; carries the status Twilio reported.
    Completed { status: String },
    /// 404 / 20404: the call had already ended (or never existed on this account).
    AlreadyGone,
}

/// How a new outbound call gets its instructions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallInstructions {
    /// Inline TwiML (`Twiml=`).
    Twiml(String),
    /// A webhook Twilio fetches with POST (`Url=`).
    Url(String),
}

/// The fields of Twilio's call resource that we use; the rest is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CallResource {
    pub sid: CallSid,
    pub status: String,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<u32>,
    message: Option<String>,
    more_info: Option<String>,
}

/// Cheap to clone: reqwest's client is a shared connection pool.
#[derive(Clone)]
pub struct TwilioRest {
    http: reqwest::Client,
    config: TwilioRestConfig,
}

impl fmt::Debug for TwilioRest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioRest")
            .field("config", &self.config)
            .finish()
    }
}

impl TwilioRest {
    pub fn new(mut config: TwilioRestConfig) -> Result<Self, RestError> {
        let trimmed = config.base_url.trim_end_matches('/');
        if !(trimmed.starts_with("https://") || trimmed.starts_with("http://")) {
            return Err(RestError::InvalidBaseUrl(config.base_url));
        }
        config.base_url = trimmed.to_owned();
        check_sid("account", &config.account_sid)?;
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(RestError::Transport)?;
        Ok(Self { http, config })
    }

    pub fn config(&self) -> &TwilioRestConfig {
        &self.config
    }

    fn calls_url(&self) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Calls",
            self.config.base_url, self.config.account_sid
        )
    }

    /// Ends the call (`Status=completed`). Idempotent: an already-ended call is `AlreadyGone`.
    pub async fn hangup(&self, call_sid: &CallSid) -> Result<HangupOutcome, RestError> {
        check_sid("call", call_sid.as_str())?;
        let url = format!("{}/{}.json", self.calls_url(), call_sid);
        match self
            .post::<CallResource>(&url, &[("Status", "completed")])
            .await
        {
            Ok(call) => Ok(HangupOutcome::Completed {
                status: call.status,
            }),
            Err(e) if e.is_not_found() => {
                debug!(call_sid = %call_sid, "hangup: call already gone");
                Ok(HangupOutcome::AlreadyGone)
            }
            Err(e) => Err(e),
        }
    }

    /// Replaces the call's running TwiML (e.g. a `<Dial>` to transfer it). The media stream
    /// then receives `stop` and its socket closes; that close is not a hang-up.
    pub async fn update_twiml(
        &self,
        call_sid: &CallSid,
        twiml: &str,
    ) -> Result<CallResource, RestError> {
        check_sid("call", call_sid.as_str())?;
        let url = format!("{}/{}.json", self.calls_url(), call_sid);
        self.post(&url, &[("Twiml", twiml)]).await
    }

    /// Places an outbound call from `from` (a number on the account) to `to`.
    pub async fn create_call(
        &self,
        to: &str,
        from: &str,
        instructions: &CallInstructions,
    ) -> Result<CallResource, RestError> {
        let url = format!("{}.json", self.calls_url());
        let (key, value) = match instructions {
            CallInstructions::Twiml(t) => ("Twiml", t.as_str()),
            CallInstructions::Url(u) => ("Url", u.as_str()),
        };
        self.post(&url, &[("To", to), ("From", from), (key, value)])
            .await
    }

    async fn post<T: for<'de> Deserialize<'de>>(
        &self,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<T, RestError> {
        let response = self
            .http
            .post(url)
            .basic_auth(&self.config.account_sid, Some(&self.config.auth_token))
            .form(form)
            .send()
            .await
            .map_err(RestError::Transport)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(RestError::Transport)?;
        debug!(status, url, "twilio REST reply");
        if (200..300).contains(&status) {
            return serde_json::from_slice(&body).map_err(|e| RestError::Decode {
                status,
                reason: e.to_string(),
            });
        }
        // Error bodies are JSON when Twilio itself answered; a proxy in between may send HTML.
        match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(err) => Err(RestError::Api {
                status,
                code: err.code,
                message: err.message.unwrap_or_default(),
                more_info: err.more_info,
            }),
            Err(_) => Err(RestError::Api {
                status,
                code: None,
                message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
                more_info: None,
            }),
        }
    }
}

fn check_sid(what: &'static str, sid: &str) -> Result<(), RestError> {
    if !sid.is_empty() && sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(RestError::InvalidSid {
            what,
            sid: sid.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_denies_unknown_fields() {
        let cfg: TwilioRestConfig =
            toml::from_str("account_sid = \"AC1\"\nauth_token = \"secret\"\n").unwrap();
        assert_eq!(cfg.base_url, "https://api.twilio.com");
        assert_eq!(cfg.timeout, Duration::from_secs(10));
        let cfg: TwilioRestConfig =
            toml::from_str("account_sid = \"AC1\"\nauth_token = \"s\"\ntimeout = \"2s 500ms\"\n")
                .unwrap();
        assert_eq!(cfg.timeout, Duration::from_millis(2500));
        let err = toml::from_str::<TwilioRestConfig>(
            "account_sid = \"AC1\"\nauth_token = \"s\"\nauth_tokn = \"x\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("auth_tokn"), "{err}");
    }

    #[test]
    fn debug_redacts_the_token() {
        let cfg = TwilioRestConfig::new("AC1", "supersecret");
        let shown = format!("{cfg:?} {:?}", TwilioRest::new(cfg.clone()).unwrap());
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(shown.contains("AC1"));
    }

    #[test]
    fn sids_with_path_characters_are_refused() {
        assert!(check_sid("call", "CA0123abc").is_ok());
        for bad in ["", "CA1/../x", "CA1?x", "CA 1"] {
            assert!(
                matches!(check_sid("call", bad), Err(RestError::InvalidSid { .. })),
                "{bad}"
            );
        }
        let mut cfg = TwilioRestConfig::new("AC1", "t");
        cfg.base_url = "ftp://x".into();
        assert!(matches!(
            TwilioRest::new(cfg),
            Err(RestError::InvalidBaseUrl(_))
        ));
    }

    #[test]
    fn not_found_detection() {
        let by_code = RestError::Api {
            status: 400,
            code: Some(ERROR_NOT_FOUND),
            message: String::new(),
            more_info: None,
        };
        let by_status = RestError::Api {
            status: 404,
            code: None,
            message: String::new(),
            more_info: None,
        };
        let other = RestError::Api {
            status: 401,
            code: Some(20003),
            message: String::new(),
            more_info: None,
        };
        assert!(by_code.is_not_found() && by_status.is_not_found() && !other.is_not_found());
    }
}
