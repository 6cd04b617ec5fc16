//! A local fake of Twilio's call REST API, enough for call control tests:
//!
//! - `POST /2010-04-01/Accounts/{AC}/Calls/{CA}.json` (update): `Status=completed|canceled`
//!   ends the call; `Twiml=…` or `Url=…` redirects it (the transfer trigger). Unknown calls get
//!   404 with Twilio error 20404; redirecting an ended call gets 400 "Call is not in-progress.
//!   Cannot redirect." (code 21220).
//! - `POST /2010-04-01/Accounts/{AC}/Calls.json` (create): `To`, `From` and one of `Twiml` /
//!   `Url` (otherwise 400, code 21205 "Url parameter is required"); answers 201 with a new
//!   call resource (status `queued`).
//! - Basic auth must be `AccountSid:AuthToken` for the account in the path, else 401 with
//!   code 20003, as Twilio answers.
//!
//! Codes 20003, 20404 and 21205 are ones Twilio is seen to return for these cases; 21220, and
//! 21201 / 20001 for a missing `To`/`From` or an invalid `Status`, are best guesses (the
//! client under test treats them as opaque codes).
//!
//! Replies are JSON call resources or Twilio error documents
//! (`{"code","message","more_info","status"}`). Every request is recorded, and every state
//! change is broadcast as a [`CallUpdate`], so a test can make its [`super::twilio_caller`]
//! send `stop` when the server transfers or hangs up the call, as Twilio would.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// A call as the fake knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeCall {
    pub sid: String,
    /// `queued`, `in-progress`, `completed` or `canceled`.
    pub status: String,
    pub to: String,
    pub from: String,
    /// The last TwiML the call was given (create or update).
    pub twiml: Option<String>,
    /// The last URL the call was pointed at (create or update).
    pub url: Option<String>,
}

/// One request, as received (including rejected ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub path: String,
    pub form: Vec<(String, String)>,
    pub authorized: bool,
    pub status: u16,
}

impl RecordedRequest {
    /// The first value of a form field.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A state change, as Twilio would act on it (a redirect or hang-up ends the media stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallUpdate {
    Created {
        sid: String,
    },
    Redirected {
        sid: String,
        twiml: Option<String>,
        url: Option<String>,
    },
    Ended {
        sid: String,
        status: String,
    },
}

#[derive(Default)]
struct FakeState {
    calls: HashMap<String, FakeCall>,
    requests: Vec<RecordedRequest>,
    next_sid: u64,
}

#[derive(Clone)]
struct Shared {
    account_sid: String,
    auth_token: String,
    state: Arc<Mutex<FakeState>>,
    updates: broadcast::Sender<CallUpdate>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running fake; stops when dropped.
pub struct FakeTwilioRest {
    addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl FakeTwilioRest {
    /// Serves on 127.0.0.1 with an OS-chosen port.
    pub async fn start(account_sid: &str, auth_token: &str) -> anyhow::Result<Self> {
        let (updates, _) = broadcast::channel(64);
        let shared = Shared {
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            state: Arc::default(),
            updates,
        };
        let app = Router::new()
            .route(
                "/2010-04-01/Accounts/{account}/Calls.json",
                post(create_call),
            )
            .route(
                "/2010-04-01/Accounts/{account}/Calls/{call}",
                post(update_call),
            )
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, shared, task })
    }

    /// Base URL for `TwilioRestConfig::base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Registers an in-progress call (the one a test's caller is on).
    pub fn add_call(&self, sid: &str, from: &str, to: &str) {
        self.shared.state().calls.insert(
            sid.to_owned(),
            FakeCall {
                sid: sid.to_owned(),
                status: "in-progress".to_owned(),
                to: to.to_owned(),
                from: from.to_owned(),
                twiml: None,
                url: None,
            },
        );
    }

    pub fn call(&self, sid: &str) -> Option<FakeCall> {
        self.shared.state().calls.get(sid).cloned()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().requests.clone()
    }

    /// State changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<CallUpdate> {
        self.shared.updates.subscribe()
    }
}

impl Drop for FakeTwilioRest {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn twilio_error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (status, Json(body)).into_response()
}

fn call_json(account: &str, call: &FakeCall) -> Value {
    json!({
        "sid": call.sid,
        "account_sid": account,
        "to": call.to,
        "from": call.from,
        "status": call.status,
        "api_version": "2010-04-01",
        "uri": format!("/2010-04-01/Accounts/{account}/Calls/{}.json", call.sid),
    })
}

/// Checks `Authorization: Basic base64(AC:token)` against the account in the path.
fn authorized(shared: &Shared, account: &str, headers: &HeaderMap) -> bool {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = BASE64.decode(encoded.trim()) else {
        return false;
    };
    let expected = format!("{}:{}", shared.account_sid, shared.auth_token);
    account == shared.account_sid && decoded == expected.as_bytes()
}

fn param<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn record(shared: &Shared, path: String, form: &[(String, String)], ok: bool, resp: &Response) {
    shared.state().requests.push(RecordedRequest {
        path,
        form: form.to_vec(),
        authorized: ok,
        status: resp.status().as_u16(),
    });
}

async fn create_call(
    State(shared): State<Shared>,
    Path(account): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let path = format!("/2010-04-01/Accounts/{account}/Calls.json");
    let ok = authorized(&shared, &account, &headers);
    let resp = if !ok {
        twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate")
    } else {
        let (to, from) = (param(&form, "To"), param(&form, "From"));
        let (twiml, url) = (param(&form, "Twiml"), param(&form, "Url"));
        match (to, from, twiml.or(url)) {
            (Some(to), Some(from), Some(_)) => {
                let mut state = shared.state();
                state.next_sid += 1;
                let call = FakeCall {
                    sid: format!("CA{:032x}", 0xfa4e_0000_u64 + state.next_sid),
                    status: "queued".to_owned(),
                    to: to.to_owned(),
                    from: from.to_owned(),
                    twiml: twiml.map(str::to_owned),
                    url: url.map(str::to_owned),
                };
                state.calls.insert(call.sid.clone(), call.clone());
                drop(state);
                let _ = shared.updates.send(CallUpdate::Created {
                    sid: call.sid.clone(),
                });
                (StatusCode::CREATED, Json(call_json(&account, &call))).into_response()
            }
            (None, _, _) | (_, None, _) => twilio_error(
                StatusCode::BAD_REQUEST,
                21201,
                "A 'To' and a 'From' phone number are required.",
            ),
            (_, _, None) => {
                twilio_error(StatusCode::BAD_REQUEST, 21205, "Url parameter is required.")
            }
        }
    };
    record(&shared, path, &form, ok, &resp);
    resp
}

async fn update_call(
    State(shared): State<Shared>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let path = format!("/2010-04-01/Accounts/{account}/Calls/{call}");
    let ok = authorized(&shared, &account, &headers);
    let resp = if !ok {
        twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate")
    } else {
        update(&shared, &account, &path, call.strip_suffix(".json"), &form)
    };
    record(&shared, path, &form, ok, &resp);
    resp
}

fn update(
    shared: &Shared,
    account: &str,
    path: &str,
    sid: Option<&str>,
    form: &[(String, String)],
) -> Response {
    let not_found = || {
        twilio_error(
            StatusCode::NOT_FOUND,
            20404,
            &format!("The requested resource {path} was not found"),
        )
    };
    let Some(sid) = sid else { return not_found() };
    let mut state = shared.state();
    let Some(call) = state.calls.get_mut(sid) else {
        return not_found();
    };
    let ended = matches!(call.status.as_str(), "completed" | "canceled");
    let (twiml, url) = (param(form, "Twiml"), param(form, "Url"));
    let update = match param(form, "Status") {
        Some(status @ ("completed" | "canceled")) => {
            if ended {
                None
            } else {
                call.status = status.to_owned();
                Some(CallUpdate::Ended {
                    sid: sid.to_owned(),
                    status: status.to_owned(),
                })
            }
        }
        Some(other) => {
            return twilio_error(
                StatusCode::BAD_REQUEST,
                20001,
                &format!("Invalid Status {other:?}: must be completed or canceled"),
            );
        }
        None if twiml.is_some() || url.is_some() => {
            if ended {
                return twilio_error(
                    StatusCode::BAD_REQUEST,
                    21220,
                    "Call is not in-progress. Cannot redirect.",
                );
            }
            call.twiml = twiml.map(str::to_owned);
            call.url = url.map(str::to_owned);
            Some(CallUpdate::Redirected {
                sid: sid.to_owned(),
                twiml: call.twiml.clone(),
                url: call.url.clone(),
            })
        }
        None => None,
    };
    let body = call_json(account, call);
    drop(state);
    if let Some(update) = update {
        let _ = shared.updates.send(update);
    }
    (StatusCode::OK, Json(body)).into_response()
}
