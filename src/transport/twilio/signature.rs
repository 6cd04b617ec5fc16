//! `X-Twilio-Signature` validation for Twilio webhooks.
//!
//! The signature is `base64(HMAC-SHA1(auth_token, url + sorted params))`, where `url` is the
//! full URL Twilio requested (scheme, host, path and query exactly as configured in the
//! console). Two quirks, both copied from Twilio's own validator (twilio-python
//! `request_validator.py`): the URL is tried with and without its port, because Twilio may
//! sign `https://host:443/...` or `https://host/...`; and JSON bodies are signed over the
//! URL only, with the body bound through a `bodySHA256` query parameter.

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use thiserror::Error;

type HmacSha1 = Hmac<Sha1>;

/// The request header Twilio puts the signature in.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    #[error("missing X-Twilio-Signature header")]
    Missing,
    #[error("X-Twilio-Signature does not match")]
    Mismatch,
    #[error("request URL has no bodySHA256 parameter for a JSON body")]
    MissingBodyHash,
    #[error("body does not match bodySHA256")]
    BodyHashMismatch,
}

/// The string-to-sign: the URL, then for each distinct parameter name in sorted order, each of
/// its distinct values in sorted order, as `name + value` without separators.
fn signing_input(url: &str, params: &[(String, String)]) -> Vec<u8> {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // Byte order of UTF-8 is code point order, which is what Python's `sorted` uses.
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = Vec::with_capacity(
        url.len() + sorted.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>(),
    );
    out.extend_from_slice(url.as_bytes());
    for (k, v) in sorted {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

fn mac(auth_token: &str, url: &str, params: &[(String, String)]) -> HmacSha1 {
    let mut mac =
        HmacSha1::new_from_slice(auth_token.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(&signing_input(url, params));
    mac
}

/// The signature Twilio would send for this request (used by tests and test clients).
pub fn compute_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    BASE64.encode(mac(auth_token, url, params).finalize().into_bytes())
}

/// Validates a form-encoded (or GET) webhook. `params` are the decoded POST form fields, in any
/// order (repeated names allowed); pass none for GET. The comparison is constant-time.
pub fn validate(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    signature: Option<&str>,
) -> Result<(), SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing)?;
    // A header that is not base64 can't match; decode failure is just a mismatch.
    let expected = BASE64
        .decode(signature.trim())
        .map_err(|_| SignatureError::Mismatch)?;
    let candidates = [with_port(url), without_port(url)];
    // Check both forms without short-circuiting, so timing says nothing about which one failed.
    let mut ok = false;
    for candidate in candidates.iter().flatten() {
        ok |= mac(auth_token, candidate, params)
            .verify_slice(&expected)
            .is_ok();
    }
    if ok {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Validates a webhook with a JSON (non-form) body: the URL's `bodySHA256` must be the hex
/// SHA-256 of the body, and the signature covers the URL alone.
pub fn validate_json_body(
    auth_token: &str,
    url: &str,
    body: &[u8],
    signature: Option<&str>,
) -> Result<(), SignatureError> {
    let claimed = query_param(url, "bodySHA256").ok_or(SignatureError::MissingBodyHash)?;
    let actual = body_sha256_hex(body);
    // Signature first, so an unsigned request learns nothing about the body check.
    validate(auth_token, url, &[], signature)?;
    if constant_time_eq(actual.as_bytes(), claimed.to_ascii_lowercase().as_bytes()) {
        Ok(())
    } else {
        Err(SignatureError::BodyHashMismatch)
    }
}

/// Lower-case hex SHA-256, the form Twilio puts in `bodySHA256`.
pub fn body_sha256_hex(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The raw (still percent-encoded) value of a query parameter; `bodySHA256` is plain hex.
fn query_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Splits `scheme://authority/rest` into (`scheme`, host part of authority incl. userinfo,
/// port, rest). `None` for anything that is not an absolute URL with an authority.
fn split_url(url: &str) -> Option<(&str, &str, Option<&str>, &str)> {
    let (scheme, after) = url.split_once("://")?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    // The port is after the last ':' that follows the host (and any IPv6 literal's ']').
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let host_and_port = &authority[host_start..];
    let search_from = host_and_port.rfind(']').map_or(0, |i| i + 1);
    match host_and_port[search_from..].rfind(':') {
        Some(i) => {
            let colon = host_start + search_from + i;
            let port = &authority[colon + 1..];
            Some((
                scheme,
                &authority[..colon],
                Some(port).filter(|p| !p.is_empty()),
                rest,
            ))
        }
        None => Some((scheme, authority, None, rest)),
    }
}

fn with_port(url: &str) -> Option<String> {
    let (scheme, host, port, rest) = split_url(url)?;
    if port.is_some() {
        return Some(url.to_owned());
    }
    let default = if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    };
    Some(format!("{scheme}://{host}:{default}{rest}"))
}

fn without_port(url: &str) -> Option<String> {
    let (scheme, host, port, rest) = split_url(url)?;
    match port {
        None => Some(url.to_owned()),
        Some(_) => Some(format!("{scheme}://{host}{rest}")),
    }
}

/// Reconstructs the public URL Twilio requested, from the request's `Host` header and the
/// path and query (`uri.path_and_query()`). Behind a TLS-terminating proxy the scheme and
/// host Twilio used only survive in `X-Forwarded-Proto` / `X-Forwarded-Host`; those are read
/// only when `trust_forwarded` is set (the proxy must be the one setting them, or a client
/// could choose the URL that gets signed). The first value of a comma-separated list wins,
/// since that is the one the outermost proxy saw.
pub fn public_url(
    headers: &HeaderMap,
    path_and_query: &str,
    default_scheme: &str,
    trust_forwarded: bool,
) -> Option<String> {
    let header = |name: &str| -> Option<&str> {
        let value = headers.get(name)?.to_str().ok()?;
        let first = value.split(',').next()?.trim();
        (!first.is_empty()).then_some(first)
    };
    let forwarded = |name: &str| if trust_forwarded { header(name) } else { None };
    let scheme = forwarded("x-forwarded-proto").unwrap_or(default_scheme);
    let host = forwarded("x-forwarded-host").or_else(|| header("host"))?;
    let path = if path_and_query.is_empty() {
        "/"
    } else {
        path_and_query
    };
    Some(format!("{scheme}://{host}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const EXPECTED: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";

    fn params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn documented_vector_computes() {
        assert_eq!(compute_signature(TOKEN, URL, &params()), EXPECTED);
        // Parameter order on the wire does not matter.
        let mut reversed = params();
        reversed.reverse();
        assert_eq!(compute_signature(TOKEN, URL, &reversed), EXPECTED);
    }

    #[test]
    fn documented_vector_validates_with_and_without_default_port() {
        assert_eq!(validate(TOKEN, URL, &params(), Some(EXPECTED)), Ok(()));
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        assert_eq!(
            validate(TOKEN, with_port, &params(), Some(EXPECTED)),
            Ok(())
        );
        // And the other way round: Twilio signed with the port, we see it without.
        let sig_with_port = compute_signature(TOKEN, with_port, &params());
        assert_eq!(
            validate(TOKEN, URL, &params(), Some(&sig_with_port)),
            Ok(())
        );
    }

    #[test]
    fn tampering_is_rejected() {
        let mut p = params();
        p[2].1 = "9999".into();
        assert_eq!(
            validate(TOKEN, URL, &p, Some(EXPECTED)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            validate("54321", URL, &params(), Some(EXPECTED)),
            Err(SignatureError::Mismatch)
        );
        let other_url = "https://mycompany.com/myapp.php?foo=1&bar=3";
        assert_eq!(
            validate(TOKEN, other_url, &params(), Some(EXPECTED)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            validate(TOKEN, URL, &params(), None),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            validate(TOKEN, URL, &params(), Some("not base64!")),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn repeated_names_sort_and_dedupe_values() {
        // Python: sorted(set(values)) per name.
        let a = vec![
            ("To".to_owned(), "b".to_owned()),
            ("To".to_owned(), "a".to_owned()),
            ("To".to_owned(), "a".to_owned()),
        ];
        let b = vec![
            ("To".to_owned(), "a".to_owned()),
            ("To".to_owned(), "b".to_owned()),
        ];
        assert_eq!(signing_input("u", &a), b"uToaTob");
        assert_eq!(
            compute_signature(TOKEN, "u", &a),
            compute_signature(TOKEN, "u", &b)
        );
    }

    #[test]
    fn body_hash_vector_and_json_validation() {
        let body = br#"{"property": "value", "boolean": true}"#;
        let hash = body_sha256_hex(body);
        assert_eq!(
            hash,
            "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
        );
        let url = format!("https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256={hash}");
        let sig = compute_signature(TOKEN, &url, &[]);
        assert_eq!(validate_json_body(TOKEN, &url, body, Some(&sig)), Ok(()));
        assert_eq!(
            validate_json_body(TOKEN, &url, b"{}", Some(&sig)),
            Err(SignatureError::BodyHashMismatch)
        );
        assert_eq!(
            validate_json_body(TOKEN, URL, body, Some(&sig)),
            Err(SignatureError::MissingBodyHash)
        );
    }

    #[test]
    fn port_forms() {
        assert_eq!(with_port("https://h/p?q").unwrap(), "https://h:443/p?q");
        assert_eq!(with_port("http://h").unwrap(), "http://h:80");
        assert_eq!(with_port("https://h:8443/p").unwrap(), "https://h:8443/p");
        assert_eq!(without_port("https://h:8443/p").unwrap(), "https://h/p");
        assert_eq!(
            without_port("https://u:pw@h:443/p").unwrap(),
            "https://u:pw@h/p"
        );
        assert_eq!(
            with_port("https://u:pw@h/p").unwrap(),
            "https://u:pw@h:443/p"
        );
        assert_eq!(with_port("https://[::1]/p").unwrap(), "https://[::1]:443/p");
        assert_eq!(
            without_port("https://[::1]:443/p").unwrap(),
            "https://[::1]/p"
        );
        assert!(with_port("not a url").is_none());
    }

    #[test]
    fn public_url_uses_forwarded_headers_only_when_trusted() {
        let mut h = HeaderMap::new();
        h.insert("host", "10.0.0.5:8080".parse().unwrap());
        assert_eq!(
            public_url(&h, "/twilio/voice?x=1", "http", true).unwrap(),
            "http://10.0.0.5:8080/twilio/voice?x=1"
        );
        h.insert("x-forwarded-proto", "https, http".parse().unwrap());
        h.insert("x-forwarded-host", "bot.example.com".parse().unwrap());
        assert_eq!(
            public_url(&h, "/twilio/voice", "http", true).unwrap(),
            "https://bot.example.com/twilio/voice"
        );
        assert_eq!(
            public_url(&h, "/twilio/voice", "http", false).unwrap(),
            "http://10.0.0.5:8080/twilio/voice"
        );
        assert!(public_url(&HeaderMap::new(), "/", "https", true).is_none());
    }
}
