//! The OpenAPI document, generated from the handlers' annotations and served at
//! `/api/v1/openapi.json`. Each API area is its own `#[derive(OpenApi)]` document; [`document`]
//! merges them, so another area (e.g. voices and TTS) is added by writing its document and one
//! more `merge` line here.

use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi, ToSchema};

use crate::http::{agent_keys, agents, analytics, call_control, calls, departments, disposition, queues, transfers};

/// Every error response: `{"error": {"code", "message", "field"?}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiErrorBody {
    pub error: ApiErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiErrorDetail {
    /// Stable: `unauthorized`, `not_found`, `validation_failed`, `conflict`, `bad_request`,
    /// `unavailable`, `internal`.
    pub code: String,
    pub message: String,
    /// For `validation_failed`: the offending field's path.
    pub field: Option<String>,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme("api_key", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    }
}

/// The call-center control plane and call logs.
#[derive(OpenApi)]
#[openapi(
    info(title = "switchboard API", description = "Calls, departments, agents, queues, transfers, analytics. \
        Every request needs `Authorization: Bearer <api key>`; data is scoped to the key's tenant. \
        An agent key (`POST /api/v1/agents/{id}/keys`) acts as that agent only: its status, offers, \
        the call it has (read, hold, mute, transfer, hang up, disposition) and the department list; \
        anything else answers 403."),
    security(("api_key" = [])),
    modifiers(&BearerAuth),
    paths(
        calls::list, calls::get_one, disposition::save,
        call_control::outbound, call_control::say, call_control::play, call_control::mute, call_control::unmute,
        call_control::hold, call_control::unhold, call_control::hangup, call_control::transfer,
        departments::create, departments::list, departments::get_one, departments::update, departments::delete,
        agents::create, agents::list, agents::get_one, agents::update, agents::delete, agents::set_status,
        agents::accept, agents::decline, agent_keys::create, agent_keys::list, agent_keys::revoke, agent_keys::me,
        queues::department_queue, queues::all,
        transfers::create, transfers::get_one, transfers::complete, transfers::cancel, transfers::for_call,
        analytics::department,
    ),
    components(schemas(ApiErrorBody, ApiErrorDetail)),
    tags(
        (name = "calls", description = "Call logs with timelines, transcripts, durations and costs"),
        (name = "call control", description = "Commands to active calls; outbound calls"),
        (name = "departments"), (name = "agents"), (name = "queues"), (name = "transfers"), (name = "analytics"),
    )
)]
pub struct CenterApi;

/// The whole document. Add an area with `.merge(TheirApi::openapi())`.
pub fn document() -> Document {
    CenterApi::openapi()
        .merge_from(crate::http::tts::TtsApiDoc::openapi())
        .merge_from(crate::http::alerts::AlertsApi::openapi())
}

pub async fn serve() -> Json<Document> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_with_bearer_auth() {
        let doc = serde_json::to_value(document()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for p in ["/api/v1/calls", "/api/v1/calls/{id}", "/api/v1/departments/{id}/queue", "/api/v1/agents/{id}/accept", "/api/v1/transfers/{id}/cancel", "/api/v1/alerts", "/api/v1/alerts/{id}/resolve", "/api/v1/calls/{id}/disposition", "/api/v1/agents/{id}/keys", "/api/v1/agents/{id}/keys/{key_id}", "/api/v1/me"] {
            assert!(paths.contains_key(p), "{p} missing from {:?}", paths.keys().collect::<Vec<_>>());
        }
        assert_eq!(doc["components"]["securitySchemes"]["api_key"]["scheme"], "bearer");
        assert!(doc["components"]["schemas"]["Department"].is_object());
    }
}
