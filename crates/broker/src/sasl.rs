//! SASL for the listeners: where a broker's SASL servers find credentials,
//! and a listener's [`SaslSettings`] and [`Authenticator`] from Kafka's
//! configs. Each connection on a SASL listener gets a
//! `transport::sasl::SaslSession` over the listener's authenticator; the
//! SaslHandshake and SaslAuthenticate handlers drive it.
//!
//! Kafka's keys, for a listener `L` (its name lower-cased in the keys):
//!
//! - `listener.name.L.sasl.enabled.mechanisms`, else
//!   `sasl.enabled.mechanisms` (Kafka's default, GSSAPI, is not served:
//!   naming it is an error here);
//! - PLAIN's users: `user_<name>="<password>"` options of the
//!   `PlainLoginModule` in `listener.name.L.plain.sasl.jaas.config`;
//! - SCRAM credentials: the metadata image (AlterUserScramCredentials,
//!   `gregor storage format --add-scram`), read at each exchange so a new
//!   credential works at once;
//! - OAUTHBEARER's validator: `listener.name.L.oauthbearer.sasl.server.callback.handler.class`
//!   (else `sasl.server.callback.handler.class`). Unset, Kafka's unsecured
//!   validator with the `unsecuredValidator*` options of
//!   `listener.name.L.oauthbearer.sasl.jaas.config`; Kafka's
//!   `OAuthBearerValidatorCallbackHandler`, signed JWTs checked against the
//!   JWKS at `sasl.oauthbearer.jwks.endpoint.url` (file:// read at start,
//!   http(s):// kept current by [`crate::jwks`]) with
//!   `sasl.oauthbearer.{expected.audience, expected.issuer, sub.claim.name,
//!   scope.claim.name, clock.skew.seconds}`, each key
//!   `listener.name.L.`-prefixed first.

use std::sync::{Arc, Weak};

use gregor_metadata::MetadataImage;
use gregor_security::oauthbearer::{
    self, JwkSet, JwtValidator, OAuthBearerConfig, UnsecuredValidator, Validator,
};
use gregor_security::{
    Authenticator, CredentialStore, JaasConfig, JaasError, Mechanism, PlainUsers, ScramCredential,
    ScramMechanism,
};

use crate::jwks::{HttpJwks, JwksEndpoint};

use crate::broker::Broker;

/// Why a listener's SASL settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SaslConfigError {
    #[error("{key}: SASL mechanism {mechanism} is not supported (Gregor serves PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER)")]
    UnsupportedMechanism { key: String, mechanism: String },
    #[error("{key}: {source}")]
    Jaas {
        key: String,
        #[source]
        source: JaasError,
    },
    #[error("listener {listener} enables PLAIN but {key} names no PlainLoginModule users")]
    NoPlainUsers { listener: String, key: String },
    #[error("{key}: {message}")]
    OAuthBearer { key: String, message: String },
}

/// A broker's credentials: PLAIN users from a listener's JAAS config, SCRAM
/// credentials from the newest metadata image.
pub struct BrokerCredentials {
    image: Box<dyn Fn() -> Option<Arc<MetadataImage>> + Send + Sync>,
    plain: PlainUsers,
}

impl BrokerCredentials {
    /// Credentials reading images from `image` (`None`: no image, e.g. the
    /// broker is gone; every SCRAM lookup then fails).
    pub fn new(
        image: impl Fn() -> Option<Arc<MetadataImage>> + Send + Sync + 'static,
        plain: PlainUsers,
    ) -> Self {
        BrokerCredentials {
            image: Box::new(image),
            plain,
        }
    }

    /// Credentials of `broker`'s metadata (held weakly: connections must
    /// not keep a stopped broker alive).
    pub fn for_broker(broker: &Arc<Broker>, plain: PlainUsers) -> Self {
        let weak: Weak<Broker> = Arc::downgrade(broker);
        Self::new(move || weak.upgrade().map(|b| b.metadata.image()), plain)
    }
}

impl CredentialStore for BrokerCredentials {
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        let image = (self.image)()?;
        let c = image.scram_credential(user, mechanism.type_id())?;
        Some(ScramCredential {
            salt: c.salt.clone(),
            stored_key: c.stored_key.clone(),
            server_key: c.server_key.clone(),
            iterations: c.iterations,
        })
    }

    fn verify_plain(&self, user: &str, password: &str) -> bool {
        self.plain.verify(user, password)
    }
}

/// The enabled mechanisms and PLAIN users of listener `listener` (e.g.
/// `SASL_PLAINTEXT`) from Kafka's keys in `props`.
pub fn listener_sasl_config(
    props: &std::collections::BTreeMap<String, String>,
    listener: &str,
) -> Result<(Vec<Mechanism>, PlainUsers), SaslConfigError> {
    let l = listener.to_ascii_lowercase();
    let own = format!("listener.name.{l}.sasl.enabled.mechanisms");
    let (key, list) = match props.get(&own) {
        Some(v) => (own, v.clone()),
        None => (
            "sasl.enabled.mechanisms".to_string(),
            props
                .get("sasl.enabled.mechanisms")
                .cloned()
                .unwrap_or_else(|| "GSSAPI".into()),
        ),
    };
    let mut enabled = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let m =
            Mechanism::from_name(name).ok_or_else(|| SaslConfigError::UnsupportedMechanism {
                key: key.clone(),
                mechanism: name.to_string(),
            })?;
        if !enabled.contains(&m) {
            enabled.push(m);
        }
    }
    let jaas_key = format!("listener.name.{l}.plain.sasl.jaas.config");
    let plain = match props.get(&jaas_key) {
        Some(text) => PlainUsers::from_jaas(&JaasConfig::parse(text).map_err(|source| {
            SaslConfigError::Jaas {
                key: jaas_key.clone(),
                source,
            }
        })?),
        None => PlainUsers::default(),
    };
    if enabled.contains(&Mechanism::Plain) && plain.is_empty() {
        return Err(SaslConfigError::NoPlainUsers {
            listener: listener.to_string(),
            key: jaas_key,
        });
    }
    Ok((enabled, plain))
}

/// Where an OAUTHBEARER listener's signed tokens find their keys.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// A `file://` JWKS, read at start (as Kafka reads it once).
    File(JwkSet),
    /// An `http(s)://` endpoint, fetched once the listener serves.
    Http(JwksEndpoint),
}

/// How an OAUTHBEARER listener validates tokens.
#[derive(Debug, Clone)]
pub enum OAuthSettings {
    Unsecured(UnsecuredValidator),
    /// A [`JwtValidator`]'s settings without its keys, and where they are.
    Jwt {
        source: JwksSource,
        expected_audience: Vec<String>,
        expected_issuer: Option<String>,
        sub_claim: String,
        scope_claim: String,
        clock_skew_ms: i64,
    },
}

impl OAuthSettings {
    /// Listener `listener`'s OAUTHBEARER settings from Kafka's keys.
    pub fn from_props(
        props: &std::collections::BTreeMap<String, String>,
        listener: &str,
    ) -> Result<Self, SaslConfigError> {
        let l = listener.to_ascii_lowercase();
        // `listener.name.L.<key>` first, then `<key>`: the key used and its value.
        let get = |key: &str| -> Option<(String, String)> {
            let own = format!("listener.name.{l}.{key}");
            match props.get(&own) {
                Some(v) => Some((own, v.clone())),
                None => props.get(key).map(|v| (key.to_string(), v.clone())),
            }
        };
        let err = |key: &str, message: String| SaslConfigError::OAuthBearer {
            key: key.to_string(),
            message,
        };
        let handler = match props.get(&format!(
            "listener.name.{l}.oauthbearer.sasl.server.callback.handler.class"
        )) {
            Some(v) => Some((
                format!("listener.name.{l}.oauthbearer.sasl.server.callback.handler.class"),
                v.trim().to_string(),
            )),
            None => props.get("sasl.server.callback.handler.class").map(|v| {
                (
                    "sasl.server.callback.handler.class".to_string(),
                    v.trim().to_string(),
                )
            }),
        }
        .filter(|(_, v)| !v.is_empty());
        match handler {
            None => {}
            Some((_, class)) if class == oauthbearer::UNSECURED_VALIDATOR_CLASS => {}
            Some((_, class)) if oauthbearer::SECURED_VALIDATOR_CLASSES.contains(&class.as_str()) => {
                return Self::jwt(&get, &err);
            }
            Some((key, class)) => {
                return Err(err(
                    &key,
                    format!(
                        "{class} is not supported (Gregor serves Kafka's unsecured validator, by default, and {})",
                        oauthbearer::SECURED_VALIDATOR_CLASSES[0]
                    ),
                ))
            }
        }
        let jaas_key = format!("listener.name.{l}.oauthbearer.sasl.jaas.config");
        let jaas = match props.get(&jaas_key) {
            Some(text) => {
                Some(
                    JaasConfig::parse(text).map_err(|source| SaslConfigError::Jaas {
                        key: jaas_key.clone(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        UnsecuredValidator::from_jaas(jaas.as_ref())
            .map(OAuthSettings::Unsecured)
            .map_err(|e| err(&jaas_key, e.to_string()))
    }

    fn jwt(
        get: &dyn Fn(&str) -> Option<(String, String)>,
        err: &dyn Fn(&str, String) -> SaslConfigError,
    ) -> Result<Self, SaslConfigError> {
        let number = |key: &str, default: i64| -> Result<i64, SaslConfigError> {
            match get(key) {
                None => Ok(default),
                Some((k, v)) => v
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| err(&k, format!("{v:?} is not a non-negative number"))),
            }
        };
        let ms = |key: &str, default: i64| {
            number(key, default).map(|n| std::time::Duration::from_millis(n as u64))
        };
        let url_key = "sasl.oauthbearer.jwks.endpoint.url";
        let (url_key, url) = get(url_key).ok_or_else(|| {
            err(
                url_key,
                "OAuthBearerValidatorCallbackHandler needs the JWKS endpoint URL".into(),
            )
        })?;
        let url = url.trim().to_string();
        let source = if let Some(path) = url.strip_prefix("file://") {
            let bytes = std::fs::read(path)
                .map_err(|e| err(&url_key, format!("cannot read {path}: {e}")))?;
            JwksSource::File(
                JwkSet::parse(&bytes).map_err(|e| err(&url_key, format!("{path}: {e}")))?,
            )
        } else if url.starts_with("http://") || url.starts_with("https://") {
            JwksSource::Http(JwksEndpoint {
                url,
                refresh: ms("sasl.oauthbearer.jwks.endpoint.refresh.ms", 3_600_000)?,
                retry_backoff: ms("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", 100)?,
                retry_backoff_max: ms(
                    "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
                    10_000,
                )?,
            })
        } else {
            return Err(err(
                &url_key,
                format!("{url:?} is not a file://, http:// or https:// URL"),
            ));
        };
        let text = |key: &str, default: &str| {
            get(key)
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_string())
        };
        Ok(OAuthSettings::Jwt {
            source,
            expected_audience: get("sasl.oauthbearer.expected.audience")
                .map(|(_, v)| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
            expected_issuer: get("sasl.oauthbearer.expected.issuer")
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty()),
            sub_claim: text("sasl.oauthbearer.sub.claim.name", "sub"),
            scope_claim: text("sasl.oauthbearer.scope.claim.name", "scope"),
            clock_skew_ms: number("sasl.oauthbearer.clock.skew.seconds", 30)?.saturating_mul(1000),
        })
    }

    /// The validator; an http(s) JWKS starts its refresher here (on the
    /// current tokio runtime).
    pub fn validator(&self) -> Validator {
        match self {
            OAuthSettings::Unsecured(v) => Validator::Unsecured(v.clone()),
            OAuthSettings::Jwt {
                source,
                expected_audience,
                expected_issuer,
                sub_claim,
                scope_claim,
                clock_skew_ms,
            } => {
                let keys: Arc<dyn oauthbearer::JwksProvider> = match source {
                    JwksSource::File(set) => Arc::new(set.clone()),
                    JwksSource::Http(endpoint) => Arc::new(HttpJwks::start(endpoint.clone())),
                };
                Validator::Jwt(JwtValidator {
                    keys,
                    expected_audience: expected_audience.clone(),
                    expected_issuer: expected_issuer.clone(),
                    sub_claim: sub_claim.clone(),
                    scope_claim: scope_claim.clone(),
                    clock_skew_ms: *clock_skew_ms,
                })
            }
        }
    }
}

/// A SASL listener's settings, read and checked at start-up.
#[derive(Debug, Clone)]
pub struct SaslSettings {
    pub enabled: Vec<Mechanism>,
    pub plain: PlainUsers,
    /// OAUTHBEARER's validation, when the listener enables it.
    pub oauthbearer: Option<OAuthSettings>,
    /// `connections.max.reauth.ms` (`listener.name.L.connections.max.reauth.ms`
    /// first): how long an authenticated session lasts; 0, forever.
    pub max_reauth_ms: i64,
    /// `connection.failed.authentication.delay.ms`.
    pub failed_auth_delay: std::time::Duration,
}

impl SaslSettings {
    /// Listener `listener`'s settings from Kafka's keys in `props` (values
    /// already validated against Kafka's config definitions).
    pub fn from_props(
        props: &std::collections::BTreeMap<String, String>,
        listener: &str,
    ) -> Result<Self, SaslConfigError> {
        let (enabled, plain) = listener_sasl_config(props, listener)?;
        let l = listener.to_ascii_lowercase();
        let number = |key: &str| {
            props
                .get(key)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(0)
        };
        let own = format!("listener.name.{l}.connections.max.reauth.ms");
        let max_reauth_ms = if props.contains_key(&own) {
            number(&own)
        } else {
            number("connections.max.reauth.ms")
        };
        let delay_ms = match props.get("connection.failed.authentication.delay.ms") {
            Some(_) => number("connection.failed.authentication.delay.ms"),
            None => 100,
        };
        let oauthbearer = if enabled.contains(&Mechanism::OAuthBearer) {
            Some(OAuthSettings::from_props(props, listener)?)
        } else {
            None
        };
        Ok(SaslSettings {
            enabled,
            plain,
            oauthbearer,
            max_reauth_ms: max_reauth_ms.max(0),
            failed_auth_delay: std::time::Duration::from_millis(delay_ms.max(0) as u64),
        })
    }

    /// The listener's [`Authenticator`] over `broker`'s credentials.
    pub fn authenticator(&self, broker: &Arc<Broker>) -> Authenticator {
        let auth = Authenticator::new(
            self.enabled.clone(),
            Arc::new(BrokerCredentials::for_broker(broker, self.plain.clone())),
        );
        match &self.oauthbearer {
            Some(o) => auth.with_oauthbearer(OAuthBearerConfig {
                validator: o.validator(),
                clock: oauthbearer::system_clock(),
            }),
            None => auth,
        }
    }
}

/// The [`Authenticator`] of `broker`'s listener `listener`.
pub fn listener_authenticator(
    broker: &Arc<Broker>,
    listener: &str,
) -> Result<Authenticator, SaslConfigError> {
    Ok(SaslSettings::from_props(&broker.config.props, listener)?.authenticator(broker))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use gregor_metadata::scram::credential_record;
    use gregor_security::{ScramClient, Step};

    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";"#;

    #[test]
    fn kafka_keys() {
        let p = props(&[
            ("sasl.enabled.mechanisms", "SCRAM-SHA-512"),
            (
                "listener.name.sasl_plaintext.sasl.enabled.mechanisms",
                "PLAIN,SCRAM-SHA-256",
            ),
            ("listener.name.sasl_plaintext.plain.sasl.jaas.config", JAAS),
        ]);
        let (enabled, plain) = listener_sasl_config(&p, "SASL_PLAINTEXT").unwrap();
        assert_eq!(enabled, vec![Mechanism::Plain, Mechanism::ScramSha256]);
        assert!(plain.verify("alice", "alice-secret"));
        let (enabled, _) = listener_sasl_config(&p, "OTHER").unwrap();
        assert_eq!(enabled, vec![Mechanism::ScramSha512]);
        // Kafka's default, GSSAPI, is not served.
        assert!(matches!(
            listener_sasl_config(&props(&[]), "SASL_SSL"),
            Err(SaslConfigError::UnsupportedMechanism { .. })
        ));
        assert!(matches!(
            listener_sasl_config(&props(&[("sasl.enabled.mechanisms", "PLAIN")]), "L"),
            Err(SaslConfigError::NoPlainUsers { .. })
        ));
        let bad = props(&[
            ("sasl.enabled.mechanisms", "PLAIN"),
            (
                "listener.name.l.plain.sasl.jaas.config",
                "x.Y required a=\"b",
            ),
        ]);
        let err = listener_sasl_config(&bad, "L").unwrap_err().to_string();
        assert!(
            err.starts_with("listener.name.l.plain.sasl.jaas.config: "),
            "{err}"
        );
    }

    #[test]
    fn oauthbearer_keys() {
        const SECURED: &str =
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler";
        // Unset: the unsecured validator with the JAAS options.
        let p = props(&[
            ("sasl.enabled.mechanisms", "OAUTHBEARER"),
            (
                "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config",
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredValidatorPrincipalClaimName=\"uid\";",
            ),
        ]);
        let s = SaslSettings::from_props(&p, "SASL_PLAINTEXT").unwrap();
        assert_eq!(s.enabled, vec![Mechanism::OAuthBearer]);
        let Some(OAuthSettings::Unsecured(v)) = &s.oauthbearer else {
            panic!("expected the unsecured validator: {:?}", s.oauthbearer);
        };
        assert_eq!(v.principal_claim, "uid");
        // The JWKS validator from a file, listener-prefixed keys first.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(
            &path,
            r#"{"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"}]}"#,
        )
        .unwrap();
        let url = format!("file://{}", path.display());
        let p = props(&[
            ("sasl.enabled.mechanisms", "PLAIN,OAUTHBEARER"),
            ("listener.name.l.plain.sasl.jaas.config", JAAS),
            ("sasl.server.callback.handler.class", SECURED),
            ("sasl.oauthbearer.jwks.endpoint.url", &url),
            ("sasl.oauthbearer.expected.audience", "a, b"),
            ("listener.name.l.sasl.oauthbearer.expected.issuer", "iss"),
            ("sasl.oauthbearer.expected.issuer", "other"),
            ("sasl.oauthbearer.clock.skew.seconds", "5"),
        ]);
        let s = SaslSettings::from_props(&p, "L").unwrap();
        let Some(OAuthSettings::Jwt {
            source: JwksSource::File(set),
            expected_audience,
            expected_issuer,
            sub_claim,
            clock_skew_ms,
            ..
        }) = &s.oauthbearer
        else {
            panic!("expected the JWKS validator: {:?}", s.oauthbearer);
        };
        assert_eq!(set.keys.len(), 1);
        assert_eq!(expected_audience, &["a", "b"]);
        assert_eq!(expected_issuer.as_deref(), Some("iss"));
        assert_eq!((sub_claim.as_str(), *clock_skew_ms), ("sub", 5000));
        // An http endpoint with Kafka's defaults.
        let p = props(&[
            ("sasl.enabled.mechanisms", "OAUTHBEARER"),
            (
                "listener.name.l.oauthbearer.sasl.server.callback.handler.class",
                "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler",
            ),
            ("sasl.oauthbearer.jwks.endpoint.url", "http://127.0.0.1:1/jwks"),
        ]);
        let s = SaslSettings::from_props(&p, "L").unwrap();
        let Some(OAuthSettings::Jwt {
            source: JwksSource::Http(e),
            ..
        }) = &s.oauthbearer
        else {
            panic!("expected an http JWKS: {:?}", s.oauthbearer);
        };
        assert_eq!(e.refresh, std::time::Duration::from_millis(3_600_000));
        assert_eq!(e.retry_backoff, std::time::Duration::from_millis(100));
        // Errors name the key.
        for (pairs, key) in [
            (
                vec![("sasl.server.callback.handler.class", SECURED)],
                "sasl.oauthbearer.jwks.endpoint.url",
            ),
            (
                vec![
                    ("sasl.server.callback.handler.class", SECURED),
                    (
                        "sasl.oauthbearer.jwks.endpoint.url",
                        "file:///nonexistent/jwks.json",
                    ),
                ],
                "sasl.oauthbearer.jwks.endpoint.url",
            ),
            (
                vec![
                    ("sasl.server.callback.handler.class", SECURED),
                    ("sasl.oauthbearer.jwks.endpoint.url", "ldap://x"),
                ],
                "sasl.oauthbearer.jwks.endpoint.url",
            ),
            (
                vec![("sasl.server.callback.handler.class", "com.example.Custom")],
                "sasl.server.callback.handler.class",
            ),
        ] {
            let mut p = props(&pairs);
            p.insert("sasl.enabled.mechanisms".into(), "OAUTHBEARER".into());
            let err = SaslSettings::from_props(&p, "L").unwrap_err().to_string();
            assert!(err.starts_with(key), "{err}");
        }
    }

    /// A SCRAM exchange against credentials as the metadata image holds
    /// them, added after the store was made.
    #[test]
    fn scram_from_the_image() {
        let image = Arc::new(parking_lot::Mutex::new(Arc::new(MetadataImage::default())));
        let source = image.clone();
        let store = Arc::new(BrokerCredentials::new(
            move || Some(source.lock().clone()),
            PlainUsers::default(),
        ));
        let auth = Authenticator::new(vec![Mechanism::ScramSha256], store);
        let next = image.lock().with_records(&[credential_record(
            "alice",
            ScramMechanism::Sha256,
            "alice-secret",
            vec![1, 2, 3, 4],
            4096,
        )]);
        *image.lock() = Arc::new(next);
        let mut server = auth.start("SCRAM-SHA-256").unwrap();
        let mut client = ScramClient::new(ScramMechanism::Sha256, "alice", "alice-secret", "c");
        let Step::Continue(first) = server.step(&client.client_first()).unwrap() else {
            panic!("expected server-first");
        };
        let fin = client.client_final(&first).unwrap();
        match server.step(&fin).unwrap() {
            Step::Done {
                principal,
                response,
            } => {
                assert_eq!(principal, "alice");
                assert!(client.verify_server_final(&response));
            }
            Step::Continue(_) => panic!("expected done"),
        }
    }
}
