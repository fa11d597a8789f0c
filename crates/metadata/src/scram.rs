//! The controller's decision for AlterUserScramCredentials: image and
//! request in, records and per-user outcomes out (Kafka's
//! `ScramControlManager.alterCredentials`).
//!
//! A user may appear once per request: a second deletion or upsertion for
//! the same user (whatever the mechanism) fails that user with
//! [`ScramAlterError::Duplicate`] and drops its other changes. Other users'
//! changes go ahead.

use gregor_security::{ScramCredential, ScramMechanism};

use crate::{MetadataImage, MetadataRecord};

/// Delete `name`'s credential for `mechanism` (Kafka's type id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramDeletion {
    pub name: String,
    pub mechanism: i8,
}

/// Add or replace `name`'s credential for `mechanism`, from the salted
/// password the client computed (`Hi(password, salt, iterations)`).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramUpsertion {
    pub name: String,
    pub mechanism: i8,
    pub iterations: i32,
    pub salt: Vec<u8>,
    pub salted_password: Vec<u8>,
}

impl std::fmt::Debug for ScramUpsertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramUpsertion")
            .field("name", &self.name)
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Why one user's alteration was refused. Messages are Kafka's; the handler
/// picks the error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramAlterError {
    /// DUPLICATE_RESOURCE.
    #[error("A user credential cannot be altered twice in the same request")]
    Duplicate,
    /// UNACCEPTABLE_CREDENTIAL.
    #[error("Username must not be empty")]
    EmptyName,
    /// UNSUPPORTED_SASL_MECHANISM.
    #[error("Unknown SCRAM mechanism")]
    UnknownMechanism,
    /// UNACCEPTABLE_CREDENTIAL.
    #[error("Too few iterations")]
    TooFewIterations,
    /// UNACCEPTABLE_CREDENTIAL.
    #[error("Too many iterations")]
    TooManyIterations,
    /// UNACCEPTABLE_CREDENTIAL: Kafka would fail deriving keys from it.
    #[error("The salt and the salted password must not be empty")]
    EmptySaltOrPassword,
    /// RESOURCE_NOT_FOUND.
    #[error("Attempt to delete a user credential that does not exist")]
    NotFound,
}

fn mechanism(name: &str, id: i8) -> Result<ScramMechanism, ScramAlterError> {
    if name.is_empty() {
        return Err(ScramAlterError::EmptyName);
    }
    ScramMechanism::from_type_id(id).ok_or(ScramAlterError::UnknownMechanism)
}

/// Each user's outcome of an AlterUserScramCredentials request.
pub type ScramAlterResults = Vec<(String, Result<(), ScramAlterError>)>;

/// Decides one AlterUserScramCredentials request: the records to append
/// and each user's outcome, in the order users first appear (deletions
/// first, as in the request's layout).
pub fn alter_user_scram_credentials(
    image: &MetadataImage,
    deletions: &[ScramDeletion],
    upsertions: &[ScramUpsertion],
) -> (Vec<MetadataRecord>, ScramAlterResults) {
    // Each user's single change, or its error.
    let mut outcomes: Vec<(String, Result<MetadataRecord, ScramAlterError>)> = Vec::new();
    let mut decide = |name: &str, change: Result<MetadataRecord, ScramAlterError>| {
        match outcomes.iter_mut().find(|(n, _)| n == name) {
            // After an error the user's further entries are not looked at.
            Some((_, Err(_))) => {}
            Some((_, slot)) => *slot = Err(ScramAlterError::Duplicate),
            None => outcomes.push((name.to_string(), change)),
        }
    };
    for d in deletions {
        let change = mechanism(&d.name, d.mechanism).and_then(|_| {
            if image.scram_credential(&d.name, d.mechanism).is_none() {
                return Err(ScramAlterError::NotFound);
            }
            Ok(MetadataRecord::RemoveUserScramCredential {
                name: d.name.clone(),
                mechanism: d.mechanism,
            })
        });
        decide(&d.name, change);
    }
    for u in upsertions {
        let change = mechanism(&u.name, u.mechanism).and_then(|m| {
            if u.iterations < m.min_iterations() {
                return Err(ScramAlterError::TooFewIterations);
            }
            if u.iterations > m.max_iterations() {
                return Err(ScramAlterError::TooManyIterations);
            }
            if u.salt.is_empty() || u.salted_password.is_empty() {
                return Err(ScramAlterError::EmptySaltOrPassword);
            }
            let c = ScramCredential::from_salted_password(
                m,
                &u.salted_password,
                u.salt.clone(),
                u.iterations,
            );
            Ok(MetadataRecord::UserScramCredential {
                name: u.name.clone(),
                mechanism: u.mechanism,
                salt: c.salt,
                stored_key: c.stored_key,
                server_key: c.server_key,
                iterations: c.iterations,
            })
        });
        decide(&u.name, change);
    }
    let mut records = Vec::new();
    let results = outcomes
        .into_iter()
        .map(|(name, outcome)| {
            (
                name,
                outcome.map(|record| {
                    records.push(record);
                }),
            )
        })
        .collect();
    (records, results)
}

/// The credential record for a password (a fresh salt drawn by the
/// caller): what `gregor storage format --add-scram` bootstraps.
pub fn credential_record(
    name: &str,
    mechanism: ScramMechanism,
    password: &str,
    salt: Vec<u8>,
    iterations: i32,
) -> MetadataRecord {
    let c = ScramCredential::from_password(mechanism, password, salt, iterations);
    MetadataRecord::UserScramCredential {
        name: name.to_string(),
        mechanism: mechanism.type_id(),
        salt: c.salt,
        stored_key: c.stored_key,
        server_key: c.server_key,
        iterations: c.iterations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(name: &str, mechanism: i8, iterations: i32) -> ScramUpsertion {
        ScramUpsertion {
            name: name.into(),
            mechanism,
            iterations,
            salt: vec![1, 2, 3],
            salted_password: vec![4; 32],
        }
    }

    fn delete(name: &str, mechanism: i8) -> ScramDeletion {
        ScramDeletion {
            name: name.into(),
            mechanism,
        }
    }

    #[test]
    fn upsert_then_delete() {
        let image = MetadataImage::default();
        let (records, results) =
            alter_user_scram_credentials(&image, &[], &[upsert("alice", 1, 8192)]);
        assert_eq!(results, vec![("alice".into(), Ok(()))]);
        let image = image.with_records(&records);
        let c = image.scram_credential("alice", 1).unwrap();
        assert_eq!(c.iterations, 8192);
        // The keys are those the SCRAM server derives from the salted password.
        let want = ScramCredential::from_salted_password(
            ScramMechanism::Sha256,
            &[4; 32],
            vec![1, 2, 3],
            8192,
        );
        assert_eq!(c.stored_key, want.stored_key);
        assert_eq!(c.server_key, want.server_key);

        let (records, results) = alter_user_scram_credentials(&image, &[delete("alice", 1)], &[]);
        assert_eq!(results, vec![("alice".into(), Ok(()))]);
        assert!(image
            .with_records(&records)
            .scram_credentials("alice")
            .is_none());
    }

    #[test]
    fn kafka_errors() {
        let image = MetadataImage::default().with_records(&[credential_record(
            "bob",
            ScramMechanism::Sha512,
            "pw",
            vec![9],
            4096,
        )]);
        let (records, results) = alter_user_scram_credentials(
            &image,
            &[
                delete("carol", 1),
                delete("bob", 2),
                delete("", 1),
                delete("dave", 0),
            ],
            &[
                upsert("erin", 1, 4095),
                upsert("frank", 2, 16385),
                upsert("bob", 1, 4096),
                upsert("gina", 3, 4096),
                upsert("hal", 2, 16384),
                upsert("carol", 1, 4096),
                upsert("ivy", 1, 4096),
                upsert("ivy", 2, 4096),
            ],
        );
        use ScramAlterError::*;
        assert_eq!(
            results,
            vec![
                ("carol".into(), Err(NotFound)),
                ("bob".into(), Err(Duplicate)),
                ("".into(), Err(EmptyName)),
                ("dave".into(), Err(UnknownMechanism)),
                ("erin".into(), Err(TooFewIterations)),
                ("frank".into(), Err(TooManyIterations)),
                ("gina".into(), Err(UnknownMechanism)),
                ("hal".into(), Ok(())),
                ("ivy".into(), Err(Duplicate)),
            ]
        );
        assert_eq!(records.len(), 1, "only hal's upsertion: {records:?}");
    }
}
