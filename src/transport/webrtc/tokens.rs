//! Short-lived call tokens: an API-key holder (a web backend) asks for one and hands it to a
//! browser, which can then place exactly one call without ever seeing the key. Kept in memory:
//! a token only has to outlive the few seconds between issue and use on this node.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::ids::TenantId;

/// Tokens start with this, so a bearer credential is told apart from an API key (`sb_...`).
pub const TOKEN_PREFIX: &str = "wct_";
/// Outstanding tokens kept at most; issuing beyond this is refused until some expire.
const MAX_OUTSTANDING: usize = 100_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("too many outstanding call tokens")]
pub struct TooManyTokens;

#[derive(Debug, Default)]
pub struct CallTokens {
    tokens: HashMap<String, (TenantId, Instant)>,
}

impl CallTokens {
    /// A new token for `tenant`, valid until `now + ttl`.
    pub fn issue(&mut self, tenant: TenantId, now: Instant, ttl: Duration) -> Result<String, TooManyTokens> {
        self.tokens.retain(|_, (_, until)| *until > now);
        if self.tokens.len() >= MAX_OUTSTANDING {
            return Err(TooManyTokens);
        }
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let token = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
        self.tokens.insert(token.clone(), (tenant, now + ttl));
        Ok(token)
    }

    /// Uses up `token`: its tenant if it was issued and has not expired or been used.
    pub fn redeem(&mut self, token: &str, now: Instant) -> Option<TenantId> {
        let (tenant, until) = self.tokens.remove(token)?;
        (until > now).then_some(tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_works_once_and_only_before_it_expires() {
        let mut tokens = CallTokens::default();
        let t0 = Instant::now();
        let tenant = TenantId("ten_a".into());
        let ttl = Duration::from_secs(60);
        let a = tokens.issue(tenant.clone(), t0, ttl).unwrap();
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(tokens.redeem(&a, t0 + Duration::from_secs(59)), Some(tenant.clone()));
        assert_eq!(tokens.redeem(&a, t0 + Duration::from_secs(59)), None, "single use");
        let b = tokens.issue(tenant.clone(), t0, ttl).unwrap();
        assert_ne!(a, b);
        assert_eq!(tokens.redeem(&b, t0 + ttl), None, "expired");
        assert_eq!(tokens.redeem("wct_made_up", t0), None);
    }

    #[test]
    fn expired_tokens_are_purged_on_issue() {
        let mut tokens = CallTokens::default();
        let t0 = Instant::now();
        for _ in 0..10 {
            tokens.issue(TenantId("ten_a".into()), t0, Duration::from_secs(1)).unwrap();
        }
        tokens.issue(TenantId("ten_a".into()), t0 + Duration::from_secs(2), Duration::from_secs(1)).unwrap();
        assert_eq!(tokens.tokens.len(), 1);
    }
}
