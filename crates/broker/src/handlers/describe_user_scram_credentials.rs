//! DescribeUserScramCredentials (key 50), version 0: the mechanisms and
//! iteration counts of users' SCRAM credentials, from this broker's
//! metadata image (never the salts or keys), as Kafka's `ScramImage.describe`.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};

use super::util::str_bytes;
use super::RequestContext;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeUserScramCredentialsRequest,
) -> Option<DescribeUserScramCredentialsResponse> {
    // DESCRIBE on the cluster.
    if !super::acl_util::authorize_cluster(
        broker,
        ctx,
        gregor_security::acl::AclOperation::Describe,
    ) {
        let mut resp = DescribeUserScramCredentialsResponse::default();
        resp.error_code = kafka_protocol::error::ResponseError::ClusterAuthorizationFailed.code();
        return Some(resp);
    }
    let image = broker.metadata.image();
    // User name to whether it was asked for more than once.
    let mut users: BTreeMap<String, bool> = BTreeMap::new();
    match req.users.as_deref() {
        // No list (or an empty one): every user with a credential.
        None | Some([]) => users.extend(image.scram_users().map(|(u, _)| (u.to_string(), false))),
        Some(asked) => {
            for u in asked {
                let name = u.name.to_string();
                let seen = users.contains_key(&name);
                users.insert(name, seen);
            }
        }
    }
    let mut resp = DescribeUserScramCredentialsResponse::default();
    for (user, duplicate) in users {
        let mut r = DescribeUserScramCredentialsResult::default();
        r.user = str_bytes(user.as_str());
        let fail = |r: &mut DescribeUserScramCredentialsResult, e: ResponseError, m: String| {
            r.error_code = e.code();
            r.error_message = Some(str_bytes(m));
        };
        if duplicate {
            fail(
                &mut r,
                ResponseError::DuplicateResource,
                format!("Cannot describe SCRAM credentials for the same user twice in a single request: {user}"),
            );
        } else {
            match image.scram_credentials(&user) {
                Some(by_mechanism) => {
                    r.credential_infos = by_mechanism
                        .iter()
                        .map(|(&mechanism, c)| {
                            let mut info = CredentialInfo::default();
                            info.mechanism = mechanism;
                            info.iterations = c.iterations;
                            info
                        })
                        .collect();
                }
                None => fail(
                    &mut r,
                    ResponseError::ResourceNotFound,
                    format!("Attempt to describe a user credential that does not exist: {user}"),
                ),
            }
        }
        resp.results.push(r);
    }
    Some(resp)
}
