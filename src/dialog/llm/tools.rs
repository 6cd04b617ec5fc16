//! The tools offered to the model and what each one does.
//!
//! `transfer_to_department` and `hang_up` become call [`Action`]s and end the turn; `lookup`
//! asks the configured webhook and gives its JSON answer back to the model. Bad arguments,
//! unknown tools and failed lookups become an error result for the model (it can apologise
//! or try again) rather than a failed turn.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{debug, info, warn};

use super::LlmError;
use super::wire::{FunctionSpec, ToolCall, ToolKind, ToolSpec};
use crate::dialog::Action;

/// Webhook answers larger than this are refused: they would crowd the model's context.
const MAX_LOOKUP_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ToolName {
    TransferToDepartment,
    HangUp,
    Lookup,
}

impl ToolName {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "transfer_to_department" => Some(Self::TransferToDepartment),
            "hang_up" => Some(Self::HangUp),
            "lookup" => Some(Self::Lookup),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct TransferArgs {
    department: String,
}

#[derive(Deserialize)]
struct HangUpArgs {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct LookupArgs {
    query: String,
}

#[derive(Serialize)]
struct LookupRequest<'a> {
    query: &'a str,
}

/// What running one tool call gave.
#[derive(Debug, PartialEq)]
pub(super) struct ToolRun {
    /// The tool message content for the model (JSON text).
    pub result: String,
    /// For the call actor; `Some` ends the turn.
    pub action: Option<Action>,
}

impl ToolRun {
    fn error(message: impl std::fmt::Display) -> Self {
        Self {
            result: json!({ "error": message.to_string() }).to_string(),
            action: None,
        }
    }
}

struct Lookup {
    http: reqwest::Client,
    url: reqwest::Url,
    timeout: Duration,
}

pub(super) struct Tools {
    /// All tools, for rounds that may still look things up.
    all: Vec<ToolSpec>,
    /// Transfer and hang-up only, for the last round.
    terminal: Vec<ToolSpec>,
    departments: Vec<String>,
    lookup: Option<Lookup>,
}

impl Tools {
    pub fn new(
        http: reqwest::Client,
        departments: Vec<String>,
        lookup_url: Option<&str>,
        lookup_timeout: Duration,
    ) -> Result<Self, LlmError> {
        let mut department =
            json!({"type": "string", "description": "The department to transfer to."});
        if !departments.is_empty() {
            department["enum"] = json!(departments);
        }
        let transfer = spec(
            "transfer_to_department",
            "Transfer the caller to a department of the company. Tell the caller first.",
            json!({"type": "object", "properties": {"department": department}, "required": ["department"]}),
        );
        let hang_up = spec(
            "hang_up",
            "End the call, after saying goodbye, when the caller is done or asks to hang up.",
            json!({"type": "object", "properties": {"reason": {"type": "string", "description": "Why the call ends."}}, "required": ["reason"]}),
        );
        let terminal = vec![transfer, hang_up];
        let mut all = terminal.clone();
        let lookup = match lookup_url.filter(|u| !u.is_empty()) {
            Some(url) => {
                let url = reqwest::Url::parse(url)
                    .map_err(|e| LlmError::NotConfigured(format!("llm.lookup_url: {e}")))?;
                all.push(spec(
                    "lookup",
                    "Look up facts about the caller's question (orders, accounts, opening hours) in the company's systems.",
                    json!({"type": "object", "properties": {"query": {"type": "string", "description": "What to look up, in a few words."}}, "required": ["query"]}),
                ));
                Some(Lookup {
                    http,
                    url,
                    timeout: lookup_timeout,
                })
            }
            None => None,
        };
        Ok(Self {
            all,
            terminal,
            departments,
            lookup,
        })
    }

    pub fn specs(&self, last_round: bool) -> &[ToolSpec] {
        if last_round {
            &self.terminal
        } else {
            &self.all
        }
    }

    /// Runs one call. `allow_lookup` is false on the last round: the budget is spent.
    pub async fn run(&self, call: &ToolCall, allow_lookup: bool) -> ToolRun {
        let args = if call.function.arguments.trim().is_empty() {
            "{}"
        } else {
            call.function.arguments.as_str()
        };
        match ToolName::parse(&call.function.name) {
            Some(ToolName::TransferToDepartment) => {
                match serde_json::from_str::<TransferArgs>(args) {
                    Ok(a) => self.transfer(a.department),
                    Err(e) => {
                        ToolRun::error(format!("bad arguments for transfer_to_department: {e}"))
                    }
                }
            }
            Some(ToolName::HangUp) => match serde_json::from_str::<HangUpArgs>(args) {
                Ok(a) => {
                    let reason = a
                        .reason
                        .filter(|r| !r.trim().is_empty())
                        .unwrap_or_else(|| "caller is done".to_owned());
                    info!(%reason, "model hangs up");
                    ToolRun {
                        result: json!({"status": "ending the call"}).to_string(),
                        action: Some(Action::Hangup { reason }),
                    }
                }
                Err(e) => ToolRun::error(format!("bad arguments for hang_up: {e}")),
            },
            Some(ToolName::Lookup) => match (&self.lookup, allow_lookup) {
                (Some(lookup), true) => match serde_json::from_str::<LookupArgs>(args) {
                    Ok(a) => lookup.ask(&a.query).await,
                    Err(e) => ToolRun::error(format!("bad arguments for lookup: {e}")),
                },
                (Some(_), false) => {
                    ToolRun::error("no more lookups for this question; answer with what you know")
                }
                (None, _) => ToolRun::error("lookup is not available"),
            },
            None => {
                warn!(name = %call.function.name, "model called an unknown tool");
                ToolRun::error(format!("unknown tool `{}`", call.function.name))
            }
        }
    }

    fn transfer(&self, department: String) -> ToolRun {
        let department = if self.departments.is_empty() {
            department.trim().to_owned()
        } else {
            match self
                .departments
                .iter()
                .find(|d| d.eq_ignore_ascii_case(department.trim()))
            {
                Some(d) => d.clone(),
                None => {
                    return ToolRun::error(format!(
                        "no department `{department}`; choose one of: {}",
                        self.departments.join(", ")
                    ));
                }
            }
        };
        if department.is_empty() {
            return ToolRun::error("department is empty");
        }
        info!(%department, "model transfers the call");
        ToolRun {
            result: json!({"status": "transferring", "department": department}).to_string(),
            action: Some(Action::TransferToDepartment { department }),
        }
    }
}

fn spec(name: &'static str, description: &'static str, parameters: serde_json::Value) -> ToolSpec {
    ToolSpec {
        kind: ToolKind::Function,
        function: FunctionSpec {
            name,
            description,
            parameters,
        },
    }
}

impl Lookup {
    async fn ask(&self, query: &str) -> ToolRun {
        debug!(%query, "lookup webhook");
        match self.fetch(query).await {
            Ok(answer) => ToolRun {
                result: answer,
                action: None,
            },
            Err(reason) => {
                warn!(%query, %reason, "lookup failed");
                ToolRun::error(format!("lookup failed: {reason}"))
            }
        }
    }

    /// The webhook's answer as compact JSON text.
    async fn fetch(&self, query: &str) -> Result<String, String> {
        let resp = self
            .http
            .post(self.url.clone())
            .timeout(self.timeout)
            .json(&LookupRequest { query })
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "timed out".to_owned()
                } else {
                    super::client::error_chain(&e)
                }
            })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("HTTP {}", status.as_u16()));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| super::client::error_chain(&e))?;
        if body.len() > MAX_LOOKUP_BYTES {
            return Err(format!("answer too large ({} bytes)", body.len()));
        }
        // Parsed and written back so the model gets valid, compact JSON whatever the webhook sent.
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("answer is not JSON: {e}"))?;
        Ok(value.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialog::llm::wire::FunctionCall;

    fn call(name: &str, args: &str) -> ToolCall {
        ToolCall {
            id: "c".into(),
            kind: ToolKind::Function,
            function: FunctionCall {
                name: name.into(),
                arguments: args.into(),
            },
        }
    }

    fn tools(departments: &[&str]) -> Tools {
        let deps = departments.iter().map(|d| d.to_string()).collect();
        Tools::new(reqwest::Client::new(), deps, None, Duration::from_secs(1)).unwrap()
    }

    #[tokio::test]
    async fn transfer_and_hang_up_become_actions() {
        let t = tools(&[]);
        let run = t
            .run(
                &call("transfer_to_department", r#"{"department":"billing"}"#),
                true,
            )
            .await;
        assert_eq!(
            run.action,
            Some(Action::TransferToDepartment {
                department: "billing".into()
            })
        );
        let run = t.run(&call("hang_up", r#"{"reason":"bye"}"#), true).await;
        assert_eq!(
            run.action,
            Some(Action::Hangup {
                reason: "bye".into()
            })
        );
        let run = t.run(&call("hang_up", ""), true).await;
        assert_eq!(
            run.action,
            Some(Action::Hangup {
                reason: "caller is done".into()
            })
        );
    }

    #[tokio::test]
    async fn known_departments_are_enforced_case_insensitively() {
        let t = tools(&["Billing", "Support"]);
        let run = t
            .run(
                &call("transfer_to_department", r#"{"department":"billing"}"#),
                true,
            )
            .await;
        assert_eq!(
            run.action,
            Some(Action::TransferToDepartment {
                department: "Billing".into()
            })
        );
        let run = t
            .run(
                &call("transfer_to_department", r#"{"department":"sales"}"#),
                true,
            )
            .await;
        assert_eq!(run.action, None);
        assert!(run.result.contains("Billing, Support"), "{}", run.result);
        let spec = serde_json::to_value(&t.specs(false)[0]).unwrap();
        assert_eq!(
            spec["function"]["parameters"]["properties"]["department"]["enum"],
            json!(["Billing", "Support"])
        );
    }

    #[tokio::test]
    async fn bad_calls_become_error_results_for_the_model() {
        let t = tools(&[]);
        for (name, args) in [
            ("transfer_to_department", "{\"dept\":1}"),
            ("hang_up", "not json"),
            ("fly", "{}"),
            ("lookup", "{}"),
        ] {
            let run = t.run(&call(name, args), true).await;
            assert_eq!(run.action, None, "{name}");
            let v: serde_json::Value = serde_json::from_str(&run.result).unwrap();
            assert!(v["error"].is_string(), "{name}: {}", run.result);
        }
    }

    #[test]
    fn lookup_is_offered_only_when_configured_and_not_on_the_last_round() {
        let names = |t: &Tools, last| {
            t.specs(last)
                .iter()
                .map(|s| s.function.name)
                .collect::<Vec<_>>()
        };
        let without = tools(&[]);
        assert_eq!(
            names(&without, false),
            ["transfer_to_department", "hang_up"]
        );
        let with = Tools::new(
            reqwest::Client::new(),
            vec![],
            Some("http://127.0.0.1:9/lookup"),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(
            names(&with, false),
            ["transfer_to_department", "hang_up", "lookup"]
        );
        assert_eq!(names(&with, true), ["transfer_to_department", "hang_up"]);
        assert!(
            Tools::new(
                reqwest::Client::new(),
                vec![],
                Some("not a url"),
                Duration::from_secs(1)
            )
            .is_err()
        );
    }
}
