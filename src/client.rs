//! Who sent a request: the client's address, as the rate limits, the logs and the Twilio
//! ingress rule ("unsigned webhooks from loopback only") see it.
//!
//! Behind a reverse proxy on the same host every TCP peer is `127.0.0.1`, so the peer address
//! alone would make the whole internet look local. Two rules keep that safe:
//! - when `server.trust_forwarded_headers` is on, the client is the address the proxy appended
//!   to `X-Forwarded-For` (the right-most entry: entries to its left were sent by the client and
//!   prove nothing), or `Forwarded: for=`, or `X-Real-IP`;
//! - a request that carries any forwarded header is never loopback, trusted or not: something
//!   relayed it, so it came from somewhere else.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

const FORWARDED_HEADERS: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];

/// The client of one request. Put in the request's extensions by [`layer`]; handlers take it
/// as an extractor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    /// The address requests are counted and logged under.
    pub ip: IpAddr,
    /// The request came through a proxy (it carried a forwarded header).
    pub forwarded: bool,
}

impl ClientAddr {
    /// From the TCP peer (`None` when the server was driven without a socket, as in router
    /// tests) and the request's headers.
    pub fn resolve(peer: Option<IpAddr>, headers: &HeaderMap, trust_forwarded: bool) -> Self {
        let forwarded = FORWARDED_HEADERS.iter().any(|h| headers.contains_key(*h));
        let from_headers = if trust_forwarded { forwarded_client(headers) } else { None };
        // No socket and no trusted header: an address that is neither loopback nor anyone's.
        let ip = from_headers.or(peer).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        Self { ip, forwarded }
    }

    /// A local process talking to us directly (`make run`, the load tools), not through a proxy.
    pub fn is_loopback(&self) -> bool {
        !self.forwarded && self.ip.is_loopback()
    }
}

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.ip.fmt(f)
    }
}

/// The proxy-reported client: the last `X-Forwarded-For` entry, else `Forwarded`'s last
/// `for=`, else `X-Real-IP`. Unparsable values count as absent.
fn forwarded_client(headers: &HeaderMap) -> Option<IpAddr> {
    let all = |name: &str| headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>();
    let xff = all("x-forwarded-for");
    if let Some(last) = xff.iter().flat_map(|v| v.split(',')).map(str::trim).filter(|s| !s.is_empty()).last() {
        return parse_ip(last);
    }
    let forwarded = all("forwarded");
    let last_for = forwarded
        .iter()
        .flat_map(|v| v.split(','))
        .flat_map(|element| element.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
        .map(|(_, v)| v.trim().trim_matches('"'))
        .last();
    if let Some(value) = last_for {
        return parse_ip(value);
    }
    all("x-real-ip").last().and_then(|v| parse_ip(v.trim()))
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_ip(value: &str) -> Option<IpAddr> {
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    value.strip_prefix('[').and_then(|v| v.split(']').next()).and_then(|v| v.parse().ok())
}

/// Middleware: resolves the client once per request and stores it in the extensions.
pub async fn layer(trust_forwarded: bool, mut request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let client = ClientAddr::resolve(peer, request.headers(), trust_forwarded);
    request.extensions_mut().insert(client);
    next.run(request).await
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(client) = parts.extensions.get::<ClientAddr>() {
            return Ok(*client);
        }
        // Not behind the layer: trust nothing but the socket.
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Ok(Self::resolve(peer, &parts.headers, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    const LOOPBACK: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));

    #[test]
    fn a_direct_loopback_peer_is_loopback() {
        let c = ClientAddr::resolve(LOOPBACK, &HeaderMap::new(), true);
        assert!(c.is_loopback());
        assert_eq!(c.ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn a_forwarded_request_is_never_loopback() {
        for trust in [false, true] {
            for h in [
                headers(&[("x-forwarded-for", "127.0.0.1")]),
                headers(&[("forwarded", "for=127.0.0.1")]),
                headers(&[("x-real-ip", "127.0.0.1")]),
            ] {
                assert!(!ClientAddr::resolve(LOOPBACK, &h, trust).is_loopback(), "trust {trust}: {h:?}");
            }
        }
    }

    #[test]
    fn trusted_headers_name_the_client_untrusted_ones_do_not() {
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7")]);
        assert_eq!(ClientAddr::resolve(LOOPBACK, &h, true).ip, "203.0.113.7".parse::<IpAddr>().unwrap());
        assert_eq!(ClientAddr::resolve(LOOPBACK, &h, false).ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
        let h = headers(&[("forwarded", "for=192.0.2.60;proto=http, for=\"[2001:db8::7]:4711\"")]);
        assert_eq!(ClientAddr::resolve(LOOPBACK, &h, true).ip, "2001:db8::7".parse::<IpAddr>().unwrap());
        let h = headers(&[("x-real-ip", "198.51.100.2")]);
        assert_eq!(ClientAddr::resolve(LOOPBACK, &h, true).ip, "198.51.100.2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_repeated_header_counts_its_last_line() {
        let h = headers(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "203.0.113.9:5000")]);
        assert_eq!(ClientAddr::resolve(LOOPBACK, &h, true).ip, "203.0.113.9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn no_socket_and_nothing_trusted_is_not_loopback() {
        let c = ClientAddr::resolve(None, &HeaderMap::new(), false);
        assert!(!c.is_loopback());
        let junk = headers(&[("x-forwarded-for", "not an address")]);
        assert!(!ClientAddr::resolve(None, &junk, true).is_loopback());
    }
}
