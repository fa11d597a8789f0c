//! AlterUserScramCredentials (key 51), version 0: add, replace or delete
//! users' SCRAM credentials. The client sends the salted password
//! (`Hi(password, salt, iterations)`); the controller stores only the
//! StoredKey and ServerKey derived from it (`gregor_metadata::scram`).

use gregor_metadata::scram::{self, ScramAlterError, ScramDeletion, ScramUpsertion};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
};

use super::util::str_bytes;
use super::RequestContext;
use crate::broker::Broker;

/// A user's refusal: its error code and message.
type Failure = (ResponseError, String);

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: AlterUserScramCredentialsRequest,
) -> Option<AlterUserScramCredentialsResponse> {
    let deletions: Vec<ScramDeletion> = req
        .deletions
        .iter()
        .map(|d| ScramDeletion {
            name: d.name.to_string(),
            mechanism: d.mechanism,
        })
        .collect();
    let upsertions: Vec<ScramUpsertion> = req
        .upsertions
        .iter()
        .map(|u| ScramUpsertion {
            name: u.name.to_string(),
            mechanism: u.mechanism,
            iterations: u.iterations,
            salt: u.salt.to_vec(),
            salted_password: u.salted_password.to_vec(),
        })
        .collect();
    // Every user asked about, for the answer if the controller is unreachable.
    let names: Vec<String> = deletions
        .iter()
        .map(|d| d.name.clone())
        .chain(upsertions.iter().map(|u| u.name.clone()))
        .fold(Vec::new(), |mut v, n| {
            if !v.contains(&n) {
                v.push(n);
            }
            v
        });
    // ALTER on the cluster, or every user is refused.
    if !super::acl_util::authorize_cluster(broker, ctx, gregor_security::acl::AclOperation::Alter) {
        let mut resp = AlterUserScramCredentialsResponse::default();
        for user in names {
            let mut r = AlterUserScramCredentialsResult::default();
            r.user = str_bytes(user);
            r.error_code = ResponseError::ClusterAuthorizationFailed.code();
            resp.results.push(r);
        }
        return Some(resp);
    }
    let outcome = broker
        .controller_update(|image| {
            Ok::<_, std::convert::Infallible>(scram::alter_user_scram_credentials(
                image,
                &deletions,
                &upsertions,
            ))
        })
        .await;
    let results: Vec<(String, Result<(), Failure>)> = match outcome {
        Ok(Ok(results)) => results
            .into_iter()
            .map(|(user, r)| (user, r.map_err(|e| (error_code(&e), e.to_string()))))
            .collect(),
        Ok(Err(never)) => match never {},
        Err(e) => names
            .into_iter()
            .map(|user| {
                (
                    user,
                    Err((ResponseError::UnknownServerError, e.to_string())),
                )
            })
            .collect(),
    };
    let mut resp = AlterUserScramCredentialsResponse::default();
    for (user, result) in results {
        let mut r = AlterUserScramCredentialsResult::default();
        r.user = str_bytes(user);
        if let Err((code, message)) = result {
            r.error_code = code.code();
            r.error_message = Some(str_bytes(message));
        }
        resp.results.push(r);
    }
    Some(resp)
}

fn error_code(e: &ScramAlterError) -> ResponseError {
    match e {
        ScramAlterError::Duplicate => ResponseError::DuplicateResource,
        ScramAlterError::UnknownMechanism => ResponseError::UnsupportedSaslMechanism,
        ScramAlterError::NotFound => ResponseError::ResourceNotFound,
        ScramAlterError::EmptyName
        | ScramAlterError::TooFewIterations
        | ScramAlterError::TooManyIterations
        | ScramAlterError::EmptySaltOrPassword => ResponseError::UnacceptableCredential,
    }
}
