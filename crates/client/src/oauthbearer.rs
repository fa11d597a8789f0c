//! The client side of SASL/OAUTHBEARER (RFC 7628, KIP-255): the token a
//! connection presents, and the initial response that carries it.
//!
//! The token is either given as is (`sasl.oauthbearer.token`) or, as Kafka's
//! `OAuthBearerUnsecuredLoginCallbackHandler` makes it from the
//! `OAuthBearerLoginModule` JAAS options, an unsigned JWT (`alg: none`) with
//! the configured claims plus `iat` and `exp`, built afresh at each connect
//! so a long-lived client never presents an expired one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

/// Kafka's default `unsecuredLoginLifetimeSeconds`.
const DEFAULT_LIFETIME_S: i64 = 3600;

/// Where a connection's OAUTHBEARER token comes from.
#[derive(Clone, PartialEq)]
pub enum TokenSource {
    /// `sasl.oauthbearer.token`: a compact JWS sent unchanged.
    Static(String),
    /// Kafka's unsecured login options.
    Unsecured(UnsecuredLogin),
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Static(_) => f.write_str("Static(..)"),
            TokenSource::Unsecured(u) => f.debug_tuple("Unsecured").field(u).finish(),
        }
    }
}

/// The `unsecuredLogin*` options of an `OAuthBearerLoginModule` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct UnsecuredLogin {
    /// `unsecuredLoginPrincipalClaimName` (default `sub`).
    pub principal_claim: String,
    /// `unsecuredLoginStringClaim_<name>` and `unsecuredLoginListClaim_<name>`.
    pub claims: Map<String, Value>,
    /// `unsecuredLoginLifetimeSeconds` (default 3600).
    pub lifetime_s: i64,
}

/// Why the OAUTHBEARER login options are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LoginError(String);

impl UnsecuredLogin {
    /// The login from `(option, value)` pairs of the JAAS entry, as Kafka's
    /// unsecured login callback handler reads them. A list claim's first
    /// character is its delimiter (`unsecuredLoginListClaim_scope=",a,b"`).
    pub fn from_options<'a>(
        options: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, LoginError> {
        let mut login = UnsecuredLogin {
            principal_claim: "sub".into(),
            claims: Map::new(),
            lifetime_s: DEFAULT_LIFETIME_S,
        };
        for (k, v) in options {
            if let Some(name) = k.strip_prefix("unsecuredLoginStringClaim_") {
                login.claims.insert(name.into(), Value::String(v.into()));
            } else if let Some(name) = k.strip_prefix("unsecuredLoginListClaim_") {
                let mut chars = v.chars();
                let items = match chars.next() {
                    None => Vec::new(),
                    Some(d) => chars
                        .as_str()
                        .split(d)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.into()))
                        .collect(),
                };
                login.claims.insert(name.into(), Value::Array(items));
            } else if k == "unsecuredLoginPrincipalClaimName" {
                if !v.trim().is_empty() {
                    login.principal_claim = v.trim().into();
                }
            } else if k == "unsecuredLoginLifetimeSeconds" {
                login.lifetime_s = v.trim().parse().map_err(|_| {
                    LoginError(format!(
                        "unsecuredLoginLifetimeSeconds: {v:?} is not an integer"
                    ))
                })?;
            }
        }
        for reserved in ["iat", "exp"] {
            if login.claims.contains_key(reserved) {
                return Err(LoginError(format!(
                    "the {reserved} claim is set by the login itself"
                )));
            }
        }
        match login.claims.get(&login.principal_claim) {
            Some(Value::String(p)) if !p.trim().is_empty() => Ok(login),
            _ => Err(LoginError(format!(
                "no principal: set unsecuredLoginStringClaim_{}",
                login.principal_claim
            ))),
        }
    }

    /// The login of librdkafka's `sasl.oauthbearer.config` for its default
    /// unsecured token builder: blank-separated `principal=`,
    /// `principalClaimName=`, `scope=` (comma-separated), `scopeClaimName=`
    /// and `lifeSeconds=`.
    pub fn from_librdkafka(config: &str) -> Result<Self, LoginError> {
        let mut principal_claim = "sub".to_string();
        let mut scope_claim = "scope".to_string();
        let (mut principal, mut scope, mut lifetime) = (None, None, DEFAULT_LIFETIME_S.to_string());
        for kv in config.split_whitespace() {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| LoginError(format!("{kv:?} is not key=value")))?;
            match k {
                "principal" => principal = Some(v.to_string()),
                "principalClaimName" => principal_claim = v.to_string(),
                "scope" => scope = Some(v.to_string()),
                "scopeClaimName" => scope_claim = v.to_string(),
                "lifeSeconds" => lifetime = v.to_string(),
                _ if k.starts_with("extension_") => {}
                _ => return Err(LoginError(format!("unknown key {k:?}"))),
            }
        }
        let principal_opt = format!("unsecuredLoginStringClaim_{principal_claim}");
        let scope_opt = format!("unsecuredLoginListClaim_{scope_claim}");
        let scope = scope.map(|s| format!(",{s}"));
        let mut options = vec![
            ("unsecuredLoginPrincipalClaimName", principal_claim.as_str()),
            ("unsecuredLoginLifetimeSeconds", lifetime.as_str()),
        ];
        if let Some(p) = &principal {
            options.push((principal_opt.as_str(), p.as_str()));
        }
        if let Some(s) = &scope {
            options.push((scope_opt.as_str(), s.as_str()));
        }
        Self::from_options(options)
    }

    /// The unsigned JWT at `now_ms`: `{"alg":"none"}`, the claims, `iat`
    /// and `exp` in seconds, an empty signature.
    pub fn token(&self, now_ms: i64) -> String {
        let mut claims = self.claims.clone();
        let iat = now_ms as f64 / 1000.0;
        claims.insert("iat".into(), number(iat));
        claims.insert("exp".into(), number(iat + self.lifetime_s as f64));
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let body = URL_SAFE_NO_PAD.encode(Value::Object(claims).to_string());
        format!("{header}.{body}.")
    }
}

fn number(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

impl TokenSource {
    /// The token to present at `now_ms`.
    pub fn token(&self, now_ms: i64) -> String {
        match self {
            TokenSource::Static(t) => t.clone(),
            TokenSource::Unsecured(u) => u.token(now_ms),
        }
    }
}

/// RFC 7628's client initial response: `n,,\x01auth=Bearer <token>\x01\x01`.
pub fn initial_response(token: &str) -> Vec<u8> {
    format!("n,,\x01auth=Bearer {token}\x01\x01").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsecured_token_has_claims_iat_and_exp() {
        let login = UnsecuredLogin::from_options([
            ("unsecuredLoginStringClaim_sub", "alice"),
            ("unsecuredLoginListClaim_scope", ",read,write"),
            ("unsecuredLoginLifetimeSeconds", "60"),
        ])
        .unwrap();
        let token = login.token(1_000_000);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2], "");
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "none");
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["scope"], serde_json::json!(["read", "write"]));
        assert_eq!(claims["iat"].as_f64(), Some(1000.0));
        assert_eq!(claims["exp"].as_f64(), Some(1060.0));
        // The broker's own validator accepts it.
        let v = gregor_security::oauthbearer::UnsecuredValidator::default();
        assert_eq!(v.validate(&token, 1_000_000).unwrap().principal, "alice");
    }

    #[test]
    fn login_needs_a_principal_and_a_numeric_lifetime() {
        assert!(UnsecuredLogin::from_options([]).is_err());
        assert!(UnsecuredLogin::from_options([
            ("unsecuredLoginStringClaim_sub", "a"),
            ("unsecuredLoginLifetimeSeconds", "x"),
        ])
        .is_err());
    }

    #[test]
    fn librdkafka_config_builds_the_same_login() {
        let a = UnsecuredLogin::from_librdkafka("principal=alice scope=kafka,other lifeSeconds=60")
            .unwrap();
        let b = UnsecuredLogin::from_options([
            ("unsecuredLoginStringClaim_sub", "alice"),
            ("unsecuredLoginListClaim_scope", ",kafka,other"),
            ("unsecuredLoginLifetimeSeconds", "60"),
        ])
        .unwrap();
        assert_eq!(a, b);
        assert!(UnsecuredLogin::from_librdkafka("scope=x").is_err());
        assert!(UnsecuredLogin::from_librdkafka("principal").is_err());
    }

    #[test]
    fn initial_response_is_rfc7628() {
        assert_eq!(initial_response("t"), b"n,,\x01auth=Bearer t\x01\x01");
    }
}
