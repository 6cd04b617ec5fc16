//! API-key authentication: `Authorization: Bearer <key>` -> the key's tenant.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::app::AppState;
use crate::error::AppError;
use crate::store::Tenant;

/// The authenticated tenant of a request. Use it as a handler argument; a request without a
/// valid key is answered 401 before the handler runs.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Tenant);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let key = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or(AppError::Unauthorized)?;
        match state.store.authenticate(key).await? {
            Some(tenant) => Ok(Self(tenant)),
            None => Err(AppError::Unauthorized),
        }
    }
}
