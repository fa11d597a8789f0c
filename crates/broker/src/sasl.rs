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
//!   naming it, or OAUTHBEARER, is an error here);
//! - PLAIN's users: `user_<name>="<password>"` options of the
//!   `PlainLoginModule` in `listener.name.L.plain.sasl.jaas.config`;
//! - SCRAM credentials: the metadata image (AlterUserScramCredentials,
//!   `gregor storage format --add-scram`), read at each exchange so a new
//!   credential works at once.

use std::sync::{Arc, Weak};

use gregor_metadata::MetadataImage;
use gregor_security::{
    Authenticator, CredentialStore, JaasConfig, JaasError, Mechanism, PlainUsers, ScramCredential,
    ScramMechanism,
};

use crate::broker::Broker;

/// Why a listener's SASL settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SaslConfigError {
    #[error("{key}: SASL mechanism {mechanism} is not supported (Gregor serves PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512)")]
    UnsupportedMechanism { key: String, mechanism: String },
    #[error("{key}: {source}")]
    Jaas {
        key: String,
        #[source]
        source: JaasError,
    },
    #[error("listener {listener} enables PLAIN but {key} names no PlainLoginModule users")]
    NoPlainUsers { listener: String, key: String },
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

/// A SASL listener's settings, read and checked at start-up.
#[derive(Debug, Clone)]
pub struct SaslSettings {
    pub enabled: Vec<Mechanism>,
    pub plain: PlainUsers,
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
        Ok(SaslSettings {
            enabled,
            plain,
            max_reauth_ms: max_reauth_ms.max(0),
            failed_auth_delay: std::time::Duration::from_millis(delay_ms.max(0) as u64),
        })
    }

    /// The listener's [`Authenticator`] over `broker`'s credentials.
    pub fn authenticator(&self, broker: &Arc<Broker>) -> Authenticator {
        Authenticator::new(
            self.enabled.clone(),
            Arc::new(BrokerCredentials::for_broker(broker, self.plain.clone())),
        )
    }
}

/// The [`Authenticator`] of `broker`'s listener `listener`.
pub fn listener_authenticator(
    broker: &Arc<Broker>,
    listener: &str,
) -> Result<Authenticator, SaslConfigError> {
    let (enabled, plain) = listener_sasl_config(&broker.config.props, listener)?;
    Ok(Authenticator::new(
        enabled,
        Arc::new(BrokerCredentials::for_broker(broker, plain)),
    ))
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
