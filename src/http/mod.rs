//! HTTP handlers: operational endpoints here, the REST API per resource beside them.

pub mod agent_keys;
pub mod agents;
pub mod alerts;
pub mod analytics;
pub mod auth;
pub mod call_control;
pub mod calls;
pub mod departments;
pub mod disposition;
pub mod events_ws;
pub mod health;
pub mod json;
pub mod openapi;
pub mod queues;
pub mod transfers;
pub mod tts;
