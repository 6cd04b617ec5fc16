//! JSON request bodies with errors in the API's shape: a body that does not parse is a 422
//! `validation_failed` naming the offending field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// Like `axum::Json`, but rejections are [`AppError::Validation`] with the field's path.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| AppError::BadRequest(e.body_text()))?;
        parse(&bytes).map(Self)
    }
}

/// Parses `bytes` as `T`; an empty body counts as `{}`.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { bytes };
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let message = err.inner().to_string();
        let mut field = err.path().to_string();
        // "missing field `name`" is reported at the parent; name the field itself.
        if let Some(missing) = message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
            field = if field == "." { missing.to_string() } else { format!("{field}.{missing}") };
        }
        if field == "." {
            field = "body".into();
        }
        AppError::Validation { field, message }
    })
}

/// A 422 naming `field`.
pub fn invalid(field: &str, message: impl Into<String>) -> AppError {
    AppError::Validation { field: field.to_string(), message: message.into() }
}

/// A phone number in E.164 form (`+` and 6 to 15 digits) or a `sip:`/`sips:` URI.
pub fn check_dial_target(field: &str, target: &str) -> Result<(), AppError> {
    let e164 = target.strip_prefix('+').is_some_and(|d| (6..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()));
    let sip = (target.starts_with("sip:") || target.starts_with("sips:")) && target.contains('@') && !target.contains(char::is_whitespace);
    if e164 || sip {
        Ok(())
    } else {
        Err(invalid(field, format!("{target:?} is neither an E.164 number (+15551234567) nor a sip: URI")))
    }
}

pub fn check_name(field: &str, name: &str) -> Result<(), AppError> {
    if name.trim().is_empty() || name.len() > 100 {
        return Err(invalid(field, "must be 1 to 100 characters"));
    }
    Ok(())
}

pub fn check_range(field: &str, value: i64, min: i64, max: i64) -> Result<(), AppError> {
    if !(min..=max).contains(&value) {
        return Err(invalid(field, format!("must be between {min} and {max}, got {value}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Option<Inner>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        n: u8,
    }

    fn field(bytes: &str) -> String {
        match parse::<Body>(bytes.as_bytes()) {
            Err(AppError::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field("{}"), "name");
        assert_eq!(field(r#"{"name": 3}"#), "name");
        assert_eq!(field(r#"{"name": "x", "inner": {"n": 300}}"#), "inner.n");
        assert_eq!(field(r#"{"name": "x", "inner": {}}"#), "inner.n");
        assert_eq!(field("not json"), "body");
    }

    #[test]
    fn dial_targets() {
        assert!(check_dial_target("f", "+15551234567").is_ok());
        assert!(check_dial_target("f", "sip:alice@example.com").is_ok());
        assert!(check_dial_target("f", "5551234").is_err());
        assert!(check_dial_target("f", "sip:nobody").is_err());
    }
}
