//! SASL/PLAIN (RFC 4616): one message, `authzid NUL authcid NUL passwd`,
//! checked against the users of Kafka's `PlainLoginModule` JAAS entry
//! (`user_<name>="<password>"` options), with Kafka's rules and messages.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use subtle::ConstantTimeEq;

use crate::jaas::{JaasConfig, JaasError};
use crate::{AuthError, CredentialStore, Step};

/// The class of Kafka's PLAIN login module.
pub const PLAIN_LOGIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";

/// The users PLAIN accepts: name to password, from the JAAS config.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PlainUsers {
    users: BTreeMap<String, String>,
}

impl fmt::Debug for PlainUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainUsers")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl PlainUsers {
    /// The `user_<name>` options of the config's `PlainLoginModule` entry.
    /// A config without that module has no PLAIN users (not an error: it
    /// may serve only SCRAM).
    pub fn from_jaas(config: &JaasConfig) -> PlainUsers {
        let users = config
            .module(PLAIN_LOGIN_MODULE)
            .map(|m| {
                m.options
                    .iter()
                    .filter_map(|(k, v)| Some((k.strip_prefix("user_")?.to_string(), v.clone())))
                    .collect()
            })
            .unwrap_or_default();
        PlainUsers { users }
    }

    /// Parses JAAS text and takes its PLAIN users.
    pub fn from_jaas_text(text: &str) -> Result<PlainUsers, JaasError> {
        Ok(Self::from_jaas(&JaasConfig::parse(text)?))
    }

    pub fn insert(&mut self, user: &str, password: &str) {
        self.users.insert(user.into(), password.into());
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether `password` is `user`'s, compared in constant time.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|p| bool::from(p.as_bytes().ct_eq(password.as_bytes())))
    }
}

/// The server side of one PLAIN exchange.
pub struct PlainServer {
    store: Arc<dyn CredentialStore>,
    complete: bool,
}

impl fmt::Debug for PlainServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainServer")
            .field("complete", &self.complete)
            .finish_non_exhaustive()
    }
}

fn malformed(reason: &str) -> AuthError {
    AuthError::Malformed {
        mechanism: "PLAIN",
        reason: reason.into(),
    }
}

impl PlainServer {
    pub fn new(store: Arc<dyn CredentialStore>) -> PlainServer {
        PlainServer {
            store,
            complete: false,
        }
    }

    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Checks the client's one message (Kafka's `PlainSaslServer`).
    pub fn step(&mut self, input: &[u8]) -> Result<Step, AuthError> {
        if self.complete {
            return Err(AuthError::IllegalState);
        }
        // Whatever the outcome, the exchange is over after one message.
        self.complete = true;
        let text = std::str::from_utf8(input).map_err(|_| malformed("response is not UTF-8"))?;
        let tokens: Vec<&str> = text.split('\0').collect();
        let [authzid, username, password] = tokens[..] else {
            return Err(malformed(&format!(
                "expected 3 tokens, got {}",
                tokens.len()
            )));
        };
        if username.is_empty() {
            return Err(malformed("username not specified"));
        }
        if password.is_empty() {
            return Err(malformed("password not specified"));
        }
        if !authzid.is_empty() && authzid != username {
            return Err(AuthError::AuthorizationIdMismatch);
        }
        if !self.store.verify_plain(username, password) {
            return Err(AuthError::InvalidCredentials {
                mechanism: "PLAIN",
                server_final: None,
            });
        }
        Ok(Step::Done {
            principal: username.to_string(),
            response: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StaticCredentials;

    fn server() -> PlainServer {
        let users = PlainUsers::from_jaas_text(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";"#,
        )
        .unwrap();
        PlainServer::new(Arc::new(StaticCredentials::with_plain(users)))
    }

    #[test]
    fn accepts_known_users() {
        assert_eq!(
            server().step(b"\0alice\0alice-secret").unwrap(),
            Step::Done {
                principal: "alice".into(),
                response: vec![]
            }
        );
        assert!(server().step(b"admin\0admin\0admin-secret").is_ok());
    }

    #[test]
    fn refuses_the_rest() {
        for (msg, want) in [
            (&b"\0alice\0wrong"[..], "Invalid credentials"),
            (b"\0bob\0alice-secret", "Invalid credentials"),
            (b"admin\0alice\0alice-secret", "authorization id"),
            (b"alice\0alice-secret", "expected 3 tokens"),
            (b"\0\0\0alice\0x", "expected 3 tokens"),
            (b"\0\0pw", "username not specified"),
            (b"\0alice\0", "password not specified"),
            (b"\xff\0a\0b", "UTF-8"),
        ] {
            let err = server().step(msg).unwrap_err().to_string();
            assert!(
                err.to_lowercase().contains(&want.to_lowercase()),
                "{msg:?}: {err}"
            );
        }
        let mut s = server();
        s.step(b"\0alice\0alice-secret").unwrap();
        assert_eq!(
            s.step(b"\0alice\0alice-secret").unwrap_err(),
            AuthError::IllegalState
        );
    }

    #[test]
    fn users_from_jaas() {
        let u = PlainUsers::from_jaas_text("x.Other required user_a=\"b\";").unwrap();
        assert!(u.is_empty());
        let u = PlainUsers::from_jaas_text(
            "org.apache.kafka.common.security.plain.PlainLoginModule required user_a=b;",
        )
        .unwrap();
        assert!(u.verify("a", "b") && !u.verify("a", "c") && !u.verify("b", "b"));
        // Passwords stay out of logs.
        assert_eq!(format!("{u:?}"), r#"PlainUsers { users: ["a"] }"#);
    }
}
