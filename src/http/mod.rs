//! HTTP handlers: operational endpoints here, the REST API per resource beside them.

pub mod auth;
pub mod calls;
pub mod health;
pub mod tts;
