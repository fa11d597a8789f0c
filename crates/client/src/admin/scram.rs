//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554).
//! As Java's admin client does, an upsertion is sent as a salted password:
//! the password never leaves the client, the salt is drawn here.

use std::collections::BTreeMap;

use bytes::Bytes;
use gregor_security::ScramMechanism;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};

use super::Admin;
use crate::error::{Error, Result};
use crate::group_ops::sb;

/// A credential's mechanism and iteration count (what describe shows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScramCredentialInfo {
    pub mechanism: ScramMechanism,
    pub iterations: i32,
}

/// One change for [`Admin::alter_user_scram_credentials`].
#[derive(Clone, PartialEq, Eq)]
pub enum UserScramCredentialAlteration {
    /// Add or replace `user`'s credential for `info.mechanism`. `salt`
    /// `None` draws a random 32-byte one.
    Upsertion {
        user: String,
        info: ScramCredentialInfo,
        password: String,
        salt: Option<Vec<u8>>,
    },
    Deletion {
        user: String,
        mechanism: ScramMechanism,
    },
}

impl std::fmt::Debug for UserScramCredentialAlteration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserScramCredentialAlteration::Upsertion { user, info, .. } => f
                .debug_struct("Upsertion")
                .field("user", user)
                .field("info", info)
                .finish_non_exhaustive(),
            UserScramCredentialAlteration::Deletion { user, mechanism } => f
                .debug_struct("Deletion")
                .field("user", user)
                .field("mechanism", mechanism)
                .finish(),
        }
    }
}

impl UserScramCredentialAlteration {
    fn user(&self) -> &str {
        match self {
            UserScramCredentialAlteration::Upsertion { user, .. }
            | UserScramCredentialAlteration::Deletion { user, .. } => user,
        }
    }
}

impl Admin {
    /// The SCRAM credentials of `users` (all users with one when `None`),
    /// each user's result apart: a user without credentials is
    /// RESOURCE_NOT_FOUND.
    pub async fn describe_user_scram_credentials(
        &self,
        users: Option<&[&str]>,
    ) -> Result<BTreeMap<String, Result<Vec<ScramCredentialInfo>>>> {
        let req = DescribeUserScramCredentialsRequest::default().with_users(users.map(|us| {
            us.iter()
                .map(|u| UserName::default().with_name(sb(u)))
                .collect()
        }));
        let conn = self.cluster.any_connection().await?;
        let resp = conn.send(&req).await?;
        Error::check(resp.error_code, resp.error_message.as_deref())?;
        Ok(resp
            .results
            .into_iter()
            .map(|r| {
                let outcome = Error::check(r.error_code, r.error_message.as_deref()).map(|()| {
                    r.credential_infos
                        .iter()
                        .filter_map(|c| {
                            Some(ScramCredentialInfo {
                                mechanism: ScramMechanism::from_type_id(c.mechanism)?,
                                iterations: c.iterations,
                            })
                        })
                        .collect()
                });
                (r.user.to_string(), outcome)
            })
            .collect())
    }

    /// Applies the alterations; one result per user named, in the order
    /// first named.
    pub async fn alter_user_scram_credentials(
        &self,
        alterations: &[UserScramCredentialAlteration],
    ) -> Result<Vec<(String, Result<()>)>> {
        let mut req = AlterUserScramCredentialsRequest::default();
        let mut rng = rand::thread_rng();
        for a in alterations {
            match a {
                UserScramCredentialAlteration::Upsertion {
                    user,
                    info,
                    password,
                    salt,
                } => {
                    let salt = salt
                        .clone()
                        .unwrap_or_else(|| gregor_security::scram::random_salt(&mut rng));
                    let iterations = u32::try_from(info.iterations).map_err(|_| {
                        Error::Invalid(format!("invalid iterations {}", info.iterations))
                    })?;
                    let salted =
                        info.mechanism
                            .salted_password(password.as_bytes(), &salt, iterations);
                    req.upsertions.push(
                        ScramCredentialUpsertion::default()
                            .with_name(sb(user))
                            .with_mechanism(info.mechanism.type_id())
                            .with_iterations(info.iterations)
                            .with_salt(Bytes::from(salt))
                            .with_salted_password(Bytes::from(salted)),
                    );
                }
                UserScramCredentialAlteration::Deletion { user, mechanism } => {
                    req.deletions.push(
                        ScramCredentialDeletion::default()
                            .with_name(sb(user))
                            .with_mechanism(mechanism.type_id()),
                    );
                }
            }
        }
        let conn = self.cluster.any_connection().await?;
        let resp = conn.send(&req).await?;
        let mut by_user: BTreeMap<String, Result<()>> = resp
            .results
            .into_iter()
            .map(|r| {
                (
                    r.user.to_string(),
                    Error::check(r.error_code, r.error_message.as_deref()),
                )
            })
            .collect();
        let mut out: Vec<(String, Result<()>)> = Vec::new();
        for a in alterations {
            let user = a.user();
            if out.iter().any(|(u, _)| u == user) {
                continue;
            }
            let result = by_user.remove(user).unwrap_or_else(|| {
                Err(Error::protocol(
                    "AlterUserScramCredentials",
                    "no result for a user",
                ))
            });
            out.push((user.to_string(), result));
        }
        Ok(out)
    }
}
