//! SASL/OAUTHBEARER (RFC 7628, Kafka's KIP-255 and KIP-342): the client's
//! initial response, the two token validators Kafka ships, and the server
//! side of the exchange.
//!
//! ```text
//!  client: n,[a=authzid],\x01auth=Bearer <token>\x01[key=value\x01...]\x01
//!  server: ""                                  (valid: done)
//!          {"status":"invalid_token"}          (invalid: an error challenge)
//!  client: \x01                                (after an error challenge)
//!  server: SASL_AUTHENTICATION_FAILED with the error JSON as the message
//! ```
//!
//! Validators, as a listener's `oauthbearer.sasl.server.callback.handler.class`
//! chooses them:
//!
//! - unset: [`UnsecuredValidator`], Kafka's
//!   `OAuthBearerUnsecuredValidatorCallbackHandler`: an unsigned JWS
//!   (`alg` "none"), options from the `OAuthBearerLoginModule` JAAS entry;
//! - [`SECURED_VALIDATOR_CLASSES`]: [`JwtValidator`], Kafka's
//!   `OAuthBearerValidatorCallbackHandler`: a JWS signed by a key of a JWKS
//!   ([`JwkSet`], from a [`JwksProvider`]), RS256/384/512, PS256/384/512,
//!   ES256/384, checked with `ring`.
//!
//! Time is passed in (milliseconds since the epoch) so expiry is tested
//! deterministically. Every decoder here returns an error on malformed
//! input, never panics.

use std::collections::BTreeSet;
use std::sync::Arc;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde_json::{Map, Value};

use crate::jaas::JaasConfig;
use crate::{AuthError, Step};

/// The class of Kafka's OAUTHBEARER login module.
pub const OAUTHBEARER_LOGIN_MODULE: &str =
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule";

/// The names of Kafka's JWKS-validating server callback handler (the
/// current one and its pre-3.4 name).
pub const SECURED_VALIDATOR_CLASSES: [&str; 2] = [
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler",
];

/// The unsecured validator's class (also accepted by name).
pub const UNSECURED_VALIDATOR_CLASS: &str = "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler";

/// Wall-clock milliseconds since the epoch.
pub type WallClock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system's wall clock.
pub fn system_clock() -> WallClock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    })
}

/// Base64url, padding optional (as Java's URL decoder takes it).
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a client's initial response or a token is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthBearerError {
    #[error("Invalid OAUTHBEARER client first message: {0}")]
    ClientFirstMessage(String),
    #[error("Invalid scheme in OAUTHBEARER client first message: {0}")]
    Scheme(String),
}

/// The client's initial response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInitialResponse {
    /// The `a=` authorization id ("" when absent), `=2C`/`=3D` decoded.
    pub authzid: String,
    pub token: String,
    /// The SASL extensions (KIP-342): every `key=value` but `auth`.
    pub extensions: Vec<(String, String)>,
}

fn bad(reason: impl Into<String>) -> OAuthBearerError {
    OAuthBearerError::ClientFirstMessage(reason.into())
}

impl ClientInitialResponse {
    /// Parses `n,[a=authzid],\x01key=value\x01...\x01` as Kafka's
    /// `OAuthBearerClientInitialResponse` does.
    pub fn parse(bytes: &[u8]) -> Result<Self, OAuthBearerError> {
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
        let rest = text
            .strip_prefix("n,")
            .ok_or_else(|| bad("the GS2 header does not start with \"n,\""))?;
        let (authz, rest) = rest
            .split_once(',')
            .ok_or_else(|| bad("the GS2 header has no second ','"))?;
        let authzid = if authz.is_empty() {
            String::new()
        } else {
            let name = authz
                .strip_prefix("a=")
                .ok_or_else(|| bad("the GS2 header's authorization id does not start with a="))?;
            decode_saslname(name)?
        };
        // `\x01` (key=value `\x01`)* `\x01`; values cannot hold `\x01`.
        let body = rest
            .strip_prefix('\x01')
            .and_then(|r| r.strip_suffix('\x01'))
            .ok_or_else(|| bad("the key-value pairs are not framed by \\x01"))?;
        let mut auth = None;
        let mut extensions = Vec::new();
        if !body.is_empty() {
            let pairs = body
                .strip_suffix('\x01')
                .ok_or_else(|| bad("the message does not end with \\x01\\x01"))?;
            for kv in pairs.split('\x01') {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| bad(format!("{kv:?} is not key=value")))?;
                if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err(bad(format!("invalid key {k:?}")));
                }
                if v.is_empty()
                    || !v
                        .bytes()
                        .all(|b| (0x21..=0x7e).contains(&b) || b" \t\r\n".contains(&b))
                {
                    return Err(bad(format!("invalid value for key {k:?}")));
                }
                if k == "auth" {
                    if auth.replace(v).is_some() {
                        return Err(bad("auth given twice"));
                    }
                } else {
                    extensions.push((k.to_string(), v.to_string()));
                }
            }
        }
        let auth = auth.ok_or_else(|| bad("no auth key"))?;
        let (scheme, token) = auth
            .split_once(' ')
            .ok_or_else(|| bad("auth is not \"<scheme> <token>\""))?;
        let token = token.trim_start_matches(' ');
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(bad("invalid auth scheme"));
        }
        if token.is_empty()
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(bad("invalid token characters"));
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(OAuthBearerError::Scheme(scheme.to_string()));
        }
        Ok(ClientInitialResponse {
            authzid,
            token: token.to_string(),
            extensions,
        })
    }
}

fn decode_saslname(s: &str) -> Result<String, OAuthBearerError> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(bad("invalid escape in the authorization id")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    if out.is_empty() || out.bytes().any(|b| b == 0 || b >= 0x80) {
        return Err(bad("invalid authorization id"));
    }
    Ok(out)
}

/// A token a validator accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidToken {
    /// The principal's name (the principal claim).
    pub principal: String,
    /// When the token expires (`exp`, in ms).
    pub expires_at_ms: i64,
    pub issued_at_ms: Option<i64>,
    pub scope: BTreeSet<String>,
}

/// Why a validator refused a token: `reason` is for the broker's log,
/// `scope` (Kafka's failure scope) makes the status "insufficient_scope".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRejection {
    pub reason: String,
    pub scope: Option<String>,
}

impl TokenRejection {
    fn new(reason: impl Into<String>) -> Self {
        TokenRejection {
            reason: reason.into(),
            scope: None,
        }
    }

    /// The error challenge Kafka's `OAuthBearerSaslServer` sends.
    pub fn json(&self) -> String {
        match &self.scope {
            None => r#"{"status":"invalid_token"}"#.to_string(),
            Some(scope) => format!(
                r#"{{"status":"insufficient_scope", "scope":"{}"}}"#,
                scope.replace('\\', "\\\\").replace('"', "\\\"")
            ),
        }
    }
}

type TokenResult = Result<ValidToken, TokenRejection>;

/// A compact JWS split and its header and claims decoded.
struct Jws<'a> {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    /// `header.payload`, what the signature covers.
    signing_input: &'a str,
    signature: Vec<u8>,
}

fn decode_json_part(part: &str, what: &str) -> Result<Map<String, Value>, TokenRejection> {
    let bytes = B64URL
        .decode(part)
        .map_err(|e| TokenRejection::new(format!("the JWS {what} is not base64url: {e}")))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(TokenRejection::new(format!(
            "the JWS {what} is not a JSON object"
        ))),
        Err(e) => Err(TokenRejection::new(format!(
            "the JWS {what} is not JSON: {e}"
        ))),
    }
}

fn split_jws(token: &str) -> Result<Jws<'_>, TokenRejection> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenRejection::new(
            "the token is not a compact JWS (three dot-separated parts)",
        ));
    };
    let header = decode_json_part(h, "header")?;
    let claims = decode_json_part(p, "payload")?;
    let signature = B64URL
        .decode(s)
        .map_err(|e| TokenRejection::new(format!("the JWS signature is not base64url: {e}")))?;
    Ok(Jws {
        header,
        claims,
        signing_input: &token[..h.len() + 1 + p.len()],
        signature,
    })
}

/// A NumericDate claim (seconds, possibly fractional) in ms.
fn numeric_ms(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, TokenRejection> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() && f.abs() < 1e15 => Ok(Some((f * 1000.0) as i64)),
            _ => Err(TokenRejection::new(format!(
                "the {name} claim is out of range"
            ))),
        },
        Some(_) => Err(TokenRejection::new(format!(
            "the {name} claim is not a number"
        ))),
    }
}

/// A string claim, trimmed and non-empty.
fn string_claim(claims: &Map<String, Value>, name: &str) -> Result<String, TokenRejection> {
    match claims.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(Value::String(_)) => Err(TokenRejection::new(format!("the {name} claim is empty"))),
        Some(_) => Err(TokenRejection::new(format!(
            "the {name} claim is not a string"
        ))),
        None => Err(TokenRejection::new(format!(
            "the token has no {name} claim"
        ))),
    }
}

/// The scope claim: a space-delimited string or a list of strings.
fn scope_claim(
    claims: &Map<String, Value>,
    name: &str,
) -> Result<BTreeSet<String>, TokenRejection> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(BTreeSet::new()),
        Some(Value::String(s)) => Ok(s
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                _ => Err(TokenRejection::new(format!(
                    "the {name} claim has a value that is not a non-empty string"
                ))),
            })
            .collect(),
        Some(_) => Err(TokenRejection::new(format!(
            "the {name} claim is neither a string nor a list"
        ))),
    }
}

/// The options of Kafka's unsecured validator (`unsecuredValidator*` in the
/// `OAuthBearerLoginModule` JAAS entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsecuredValidator {
    pub principal_claim: String,
    pub scope_claim: String,
    pub required_scope: BTreeSet<String>,
    pub allowable_clock_skew_ms: i64,
}

impl Default for UnsecuredValidator {
    fn default() -> Self {
        UnsecuredValidator {
            principal_claim: "sub".into(),
            scope_claim: "scope".into(),
            required_scope: BTreeSet::new(),
            allowable_clock_skew_ms: 0,
        }
    }
}

/// Why an OAUTHBEARER server setting is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthConfigError {
    #[error("JAAS option {option}: {value:?} is not a non-negative integer")]
    ClockSkew { option: &'static str, value: String },
    #[error("JWKS: {0}")]
    Jwks(String),
}

impl UnsecuredValidator {
    /// The options of `jaas`'s `OAuthBearerLoginModule` entry (defaults
    /// without one).
    pub fn from_jaas(jaas: Option<&JaasConfig>) -> Result<Self, OAuthConfigError> {
        let mut v = UnsecuredValidator::default();
        let Some(module) = jaas.and_then(|j| {
            j.modules
                .iter()
                .find(|m| m.class == OAUTHBEARER_LOGIN_MODULE)
                .or(j.modules.first())
        }) else {
            return Ok(v);
        };
        if let Some(p) = module.option("unsecuredValidatorPrincipalClaimName") {
            if !p.trim().is_empty() {
                v.principal_claim = p.trim().to_string();
            }
        }
        if let Some(s) = module.option("unsecuredValidatorScopeClaimName") {
            if !s.trim().is_empty() {
                v.scope_claim = s.trim().to_string();
            }
        }
        if let Some(r) = module.option("unsecuredValidatorRequiredScope") {
            v.required_scope = r
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
        if let Some(skew) = module.option("unsecuredValidatorAllowableClockSkewMs") {
            v.allowable_clock_skew_ms = skew
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| OAuthConfigError::ClockSkew {
                    option: "unsecuredValidatorAllowableClockSkewMs",
                    value: skew.to_string(),
                })?;
        }
        Ok(v)
    }

    /// Validates an unsecured JWS at `now_ms`, as Kafka's
    /// `OAuthBearerUnsecuredValidatorCallbackHandler` does.
    pub fn validate(&self, token: &str, now_ms: i64) -> TokenResult {
        let jws = split_jws(token)?;
        if jws.header.get("alg") != Some(&Value::String("none".into())) {
            return Err(TokenRejection::new(
                "an unsecured JWS must have alg \"none\"",
            ));
        }
        if !jws.signature.is_empty() {
            return Err(TokenRejection::new(
                "an unsecured JWS must have an empty signature",
            ));
        }
        let principal = string_claim(&jws.claims, &self.principal_claim)?;
        let expires_at_ms = numeric_ms(&jws.claims, "exp")?
            .ok_or_else(|| TokenRejection::new("the token has no exp claim"))?;
        let issued_at_ms = numeric_ms(&jws.claims, "iat")?;
        let scope = scope_claim(&jws.claims, &self.scope_claim)?;
        let skew = self.allowable_clock_skew_ms;
        if let Some(iat) = issued_at_ms {
            if now_ms < iat.saturating_sub(skew) {
                return Err(TokenRejection::new(format!(
                    "The Issued At value ({iat} ms) is after the current time ({now_ms} ms) by more than the allowable clock skew ({skew} ms)"
                )));
            }
            if expires_at_ms <= iat {
                return Err(TokenRejection::new(format!(
                    "The Expiration Time time ({expires_at_ms} ms) is not after the Issued At time ({iat} ms)"
                )));
            }
        }
        if now_ms >= expires_at_ms.saturating_add(skew) {
            return Err(TokenRejection::new(format!(
                "The indicated time ({now_ms} ms) is on or after the Expiration Time value ({expires_at_ms} ms) plus the allowable clock skew ({skew} ms)"
            )));
        }
        if let Some(missing) = self.required_scope.iter().find(|s| !scope.contains(*s)) {
            return Err(TokenRejection {
                reason: format!("The provided scope is missing a required scope value ({missing})"),
                scope: Some(
                    self.required_scope
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
            });
        }
        Ok(ValidToken {
            principal,
            expires_at_ms,
            issued_at_ms,
            scope,
        })
    }
}

/// A public key of a JWKS that Gregor can verify with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    pub kid: Option<String>,
    /// The key's `alg`, if it names one: then only that algorithm is
    /// accepted with it.
    pub alg: Option<String>,
    pub key: PublicKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Modulus and exponent, big-endian.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed point `04 || x || y`.
    EcP256(Vec<u8>),
    EcP384(Vec<u8>),
}

/// The signature algorithms accepted, each with the key type it needs.
const ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
];

impl Jwk {
    /// Whether a token signed with `alg` may be checked with this key.
    fn accepts(&self, alg: &str) -> bool {
        if self.alg.as_deref().is_some_and(|a| a != alg) {
            return false;
        }
        match &self.key {
            PublicKey::Rsa { .. } => alg.starts_with("RS") || alg.starts_with("PS"),
            PublicKey::EcP256(_) => alg == "ES256",
            PublicKey::EcP384(_) => alg == "ES384",
        }
    }

    fn verify(&self, alg: &str, message: &[u8], signature: &[u8]) -> bool {
        use ring::signature as s;
        match &self.key {
            PublicKey::Rsa { n, e } => {
                let params: &s::RsaParameters = match alg {
                    "RS256" => &s::RSA_PKCS1_2048_8192_SHA256,
                    "RS384" => &s::RSA_PKCS1_2048_8192_SHA384,
                    "RS512" => &s::RSA_PKCS1_2048_8192_SHA512,
                    "PS256" => &s::RSA_PSS_2048_8192_SHA256,
                    "PS384" => &s::RSA_PSS_2048_8192_SHA384,
                    "PS512" => &s::RSA_PSS_2048_8192_SHA512,
                    _ => return false,
                };
                s::RsaPublicKeyComponents { n, e }
                    .verify(params, message, signature)
                    .is_ok()
            }
            PublicKey::EcP256(point) => {
                s::UnparsedPublicKey::new(&s::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, signature)
                    .is_ok()
            }
            PublicKey::EcP384(point) => {
                s::UnparsedPublicKey::new(&s::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, signature)
                    .is_ok()
            }
        }
    }
}

/// A JSON Web Key Set (RFC 7517): the keys Gregor can use. Keys of other
/// types (`oct`, `OKP`), or for encryption (`use` "enc"), are skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

impl JwkSet {
    pub fn parse(bytes: &[u8]) -> Result<Self, OAuthConfigError> {
        let err = |m: String| OAuthConfigError::Jwks(m);
        let doc: Value =
            serde_json::from_slice(bytes).map_err(|e| err(format!("not JSON: {e}")))?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| err("no \"keys\" array".into()))?;
        let mut out = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let text = |name: &str| k.get(name).and_then(Value::as_str);
            if text("use").is_some_and(|u| u != "sig") {
                continue;
            }
            let bin = |name: &str| -> Result<Vec<u8>, OAuthConfigError> {
                let v = text(name).ok_or_else(|| err(format!("key {i} has no {name}")))?;
                B64URL
                    .decode(v)
                    .map_err(|e| err(format!("key {i}: {name} is not base64url: {e}")))
            };
            let key = match (text("kty"), text("crv")) {
                (Some("RSA"), _) => PublicKey::Rsa {
                    n: bin("n")?,
                    e: bin("e")?,
                },
                (Some("EC"), Some(crv @ ("P-256" | "P-384"))) => {
                    let (x, y) = (bin("x")?, bin("y")?);
                    let len = if crv == "P-256" { 32 } else { 48 };
                    if x.len() != len || y.len() != len {
                        return Err(err(format!(
                            "key {i}: {crv} coordinates are not {len} bytes"
                        )));
                    }
                    let mut point = vec![4];
                    point.extend_from_slice(&x);
                    point.extend_from_slice(&y);
                    if crv == "P-256" {
                        PublicKey::EcP256(point)
                    } else {
                        PublicKey::EcP384(point)
                    }
                }
                _ => continue,
            };
            out.push(Jwk {
                kid: text("kid").map(String::from),
                alg: text("alg").map(String::from),
                key,
            });
        }
        Ok(JwkSet { keys: out })
    }
}

/// Where [`JwtValidator`] gets its keys: a JWKS file read once, or an
/// HTTP(S) endpoint that a refresher keeps current.
pub trait JwksProvider: Send + Sync {
    /// The newest key set (`None`: not fetched yet).
    fn jwks(&self) -> Option<Arc<JwkSet>>;
    /// No key matched `kid`: fetch the set again soon, as Kafka's
    /// `RefreshingHttpsJwks.maybeExpediteRefresh` does. The current
    /// validation fails regardless.
    fn refresh_soon(&self, _kid: Option<&str>) {}
}

impl JwksProvider for JwkSet {
    fn jwks(&self) -> Option<Arc<JwkSet>> {
        Some(Arc::new(self.clone()))
    }
}

/// Kafka's JWKS-validating `OAuthBearerValidatorCallbackHandler` settings.
#[derive(Clone)]
pub struct JwtValidator {
    pub keys: Arc<dyn JwksProvider>,
    /// `sasl.oauthbearer.expected.audience`: one of them must be in `aud`.
    pub expected_audience: Vec<String>,
    /// `sasl.oauthbearer.expected.issuer`.
    pub expected_issuer: Option<String>,
    /// `sasl.oauthbearer.sub.claim.name`.
    pub sub_claim: String,
    /// `sasl.oauthbearer.scope.claim.name`.
    pub scope_claim: String,
    /// `sasl.oauthbearer.clock.skew.seconds`, in ms.
    pub clock_skew_ms: i64,
}

impl std::fmt::Debug for JwtValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtValidator")
            .field("expected_audience", &self.expected_audience)
            .field("expected_issuer", &self.expected_issuer)
            .field("sub_claim", &self.sub_claim)
            .finish_non_exhaustive()
    }
}

impl JwtValidator {
    /// A validator with Kafka's defaults over `keys`.
    pub fn new(keys: Arc<dyn JwksProvider>) -> Self {
        JwtValidator {
            keys,
            expected_audience: Vec::new(),
            expected_issuer: None,
            sub_claim: "sub".into(),
            scope_claim: "scope".into(),
            clock_skew_ms: 30_000,
        }
    }

    /// Validates a signed JWT at `now_ms` (Kafka's
    /// `ValidatorAccessTokenValidator`: signature by a JWKS key, `exp` and
    /// `iat` required, `nbf` honoured, audience and issuer if configured).
    pub fn validate(&self, token: &str, now_ms: i64) -> TokenResult {
        let jws = split_jws(token)?;
        let alg = match jws.header.get("alg") {
            Some(Value::String(a)) => a.as_str(),
            _ => return Err(TokenRejection::new("the JWS header has no alg")),
        };
        if !ALGORITHMS.contains(&alg) {
            return Err(TokenRejection::new(format!(
                "the JWS algorithm {alg:?} is not accepted"
            )));
        }
        let kid = match jws.header.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.as_str()),
            Some(_) => return Err(TokenRejection::new("the JWS kid is not a string")),
        };
        let Some(set) = self.keys.jwks() else {
            self.keys.refresh_soon(kid);
            return Err(TokenRejection::new("the JWKS has not been retrieved yet"));
        };
        let candidates: Vec<&Jwk> = set
            .keys
            .iter()
            .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
            .collect();
        if candidates.is_empty() {
            self.keys.refresh_soon(kid);
            return Err(TokenRejection::new(format!(
                "no JWKS key has kid {}",
                kid.unwrap_or("(none)")
            )));
        }
        let usable: Vec<&&Jwk> = candidates.iter().filter(|k| k.accepts(alg)).collect();
        if usable.is_empty() {
            return Err(TokenRejection::new(format!(
                "no JWKS key with kid {} is for algorithm {alg}",
                kid.unwrap_or("(none)")
            )));
        }
        if !usable
            .iter()
            .any(|k| k.verify(alg, jws.signing_input.as_bytes(), &jws.signature))
        {
            return Err(TokenRejection::new("the JWS signature is invalid"));
        }
        let c = &jws.claims;
        let skew = self.clock_skew_ms;
        let expires_at_ms = numeric_ms(c, "exp")?
            .ok_or_else(|| TokenRejection::new("the token has no exp claim"))?;
        let issued_at_ms = numeric_ms(c, "iat")?
            .ok_or_else(|| TokenRejection::new("the token has no iat claim"))?;
        if now_ms >= expires_at_ms.saturating_add(skew) {
            return Err(TokenRejection::new(format!(
                "the token expired at {expires_at_ms} ms (now {now_ms} ms, allowed clock skew {skew} ms)"
            )));
        }
        if let Some(nbf) = numeric_ms(c, "nbf")? {
            if now_ms < nbf.saturating_sub(skew) {
                return Err(TokenRejection::new(format!(
                    "the token is not valid before {nbf} ms (now {now_ms} ms)"
                )));
            }
        }
        if !self.expected_audience.is_empty() {
            let aud: Vec<&str> = match c.get("aud") {
                Some(Value::String(a)) => vec![a.as_str()],
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !aud
                .iter()
                .any(|a| self.expected_audience.iter().any(|e| e == a))
            {
                return Err(TokenRejection::new(format!(
                    "the token's audience {aud:?} has none of {:?}",
                    self.expected_audience
                )));
            }
        }
        if let Some(expected) = &self.expected_issuer {
            match c.get("iss") {
                Some(Value::String(iss)) if iss == expected => {}
                other => {
                    return Err(TokenRejection::new(format!(
                        "the token's issuer {other:?} is not {expected:?}"
                    )))
                }
            }
        }
        let principal = string_claim(c, &self.sub_claim)?;
        let scope = scope_claim(c, &self.scope_claim)?;
        Ok(ValidToken {
            principal,
            expires_at_ms,
            issued_at_ms: Some(issued_at_ms),
            scope,
        })
    }
}

/// A listener's OAUTHBEARER validator.
#[derive(Debug, Clone)]
pub enum Validator {
    Unsecured(UnsecuredValidator),
    Jwt(JwtValidator),
}

impl Validator {
    pub fn validate(&self, token: &str, now_ms: i64) -> TokenResult {
        match self {
            Validator::Unsecured(v) => v.validate(token, now_ms),
            Validator::Jwt(v) => v.validate(token, now_ms),
        }
    }
}

/// A listener's OAUTHBEARER validation: the validator and the wall clock.
#[derive(Clone)]
pub struct OAuthBearerConfig {
    pub validator: Validator,
    pub clock: WallClock,
}

impl std::fmt::Debug for OAuthBearerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.validator.fmt(f)
    }
}

#[derive(Debug)]
enum State {
    Initial,
    /// The error challenge went out; the client answers `\x01`.
    ErrorSent {
        json: String,
        reason: String,
    },
    Done,
}

/// The server side of one OAUTHBEARER exchange (Kafka's `OAuthBearerSaslServer`).
pub struct OAuthBearerServer {
    config: Arc<OAuthBearerConfig>,
    state: State,
    /// The token's remaining lifetime when it was validated.
    lifetime_ms: Option<i64>,
    extensions: Vec<(String, String)>,
}

impl std::fmt::Debug for OAuthBearerServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthBearerServer")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl OAuthBearerServer {
    pub fn new(config: Arc<OAuthBearerConfig>) -> Self {
        OAuthBearerServer {
            config,
            state: State::Initial,
            lifetime_ms: None,
            extensions: Vec::new(),
        }
    }

    /// The validated token's remaining lifetime (ms) when authenticated:
    /// Kafka's credential lifetime, which bounds the KIP-368 session.
    pub fn credential_lifetime_ms(&self) -> Option<i64> {
        self.lifetime_ms
    }

    /// The client's SASL extensions (all accepted, as Kafka's validators do).
    pub fn extensions(&self) -> &[(String, String)] {
        &self.extensions
    }

    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Done)
    }

    pub fn step(&mut self, input: &[u8]) -> Result<Step, AuthError> {
        let state = std::mem::replace(&mut self.state, State::Done);
        match state {
            State::Done => return Err(AuthError::IllegalState),
            State::ErrorSent { json, reason } if input == b"\x01" => {
                return Err(AuthError::OAuthBearer {
                    message: json,
                    detail: reason,
                })
            }
            _ => {}
        }
        let first = ClientInitialResponse::parse(input).map_err(|e| AuthError::OAuthBearer {
            message: AuthError::InvalidCredentials {
                mechanism: "OAUTHBEARER",
                server_final: None,
            }
            .to_string(),
            detail: e.to_string(),
        })?;
        let now = (self.config.clock)();
        match self.config.validator.validate(&first.token, now) {
            Ok(token) => {
                if !first.authzid.is_empty() && first.authzid != token.principal {
                    let message = format!(
                        "Authentication failed: Client requested an authorization id ({}) that is different from the token's principal name ({})",
                        first.authzid, token.principal
                    );
                    return Err(AuthError::OAuthBearer {
                        detail: message.clone(),
                        message,
                    });
                }
                self.lifetime_ms = Some(token.expires_at_ms.saturating_sub(now));
                self.extensions = first.extensions;
                Ok(Step::Done {
                    principal: token.principal,
                    response: Vec::new(),
                })
            }
            Err(rejection) => {
                let json = rejection.json();
                self.state = State::ErrorSent {
                    json: json.clone(),
                    reason: rejection.reason,
                };
                Ok(Step::Continue(json.into_bytes()))
            }
        }
    }
}

#[cfg(test)]
mod tests;
