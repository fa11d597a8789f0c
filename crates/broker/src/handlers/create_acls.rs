//! CreateAcls (key 30), versions 1-3: each binding is checked and created
//! by the controller (`gregor_metadata::acls::create_acls`); one that
//! exists already succeeds without a change, an invalid one fails alone
//! with INVALID_REQUEST.

use gregor_metadata::acls;
use gregor_security::acl::{
    AccessControlEntry, AclBinding, AclOperation, PatternType, PermissionType, ResourcePattern,
    ResourceType,
};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use uuid::Uuid;

use super::acl_util::{self, NO_AUTHORIZER};
use super::util::str_bytes;
use super::RequestContext;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: CreateAclsRequest,
) -> Option<CreateAclsResponse> {
    let result = |code: ResponseError, message: String| {
        let mut r = AclCreationResult::default();
        r.error_code = code.code();
        r.error_message = Some(str_bytes(message));
        r
    };
    let mut resp = CreateAclsResponse::default();
    if broker.config.authorizer.is_none() {
        resp.results = req
            .creations
            .iter()
            .map(|_| result(ResponseError::SecurityDisabled, NO_AUTHORIZER.into()))
            .collect();
        return Some(resp);
    }
    if !acl_util::authorize_cluster(broker, ctx, AclOperation::Alter) {
        resp.results = req
            .creations
            .iter()
            .map(|_| {
                let mut r = AclCreationResult::default();
                r.error_code = ResponseError::ClusterAuthorizationFailed.code();
                r
            })
            .collect();
        return Some(resp);
    }
    let bindings: Vec<AclBinding> = req
        .creations
        .iter()
        .map(|c| AclBinding {
            pattern: ResourcePattern {
                resource_type: ResourceType::from_code(c.resource_type),
                name: c.resource_name.to_string(),
                pattern_type: PatternType::from_code(c.resource_pattern_type),
            },
            entry: AccessControlEntry {
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: AclOperation::from_code(c.operation),
                permission: PermissionType::from_code(c.permission_type),
            },
        })
        .collect();
    let outcome = broker
        .controller_update(|image| {
            Ok::<_, std::convert::Infallible>(acls::create_acls(
                image,
                &bindings,
                &mut Uuid::new_v4,
            ))
        })
        .await;
    resp.results = match outcome {
        Ok(Ok(results)) => results
            .into_iter()
            .map(|r| match r {
                Ok(()) => AclCreationResult::default(),
                Err(e) => result(ResponseError::InvalidRequest, e.to_string()),
            })
            .collect(),
        Ok(Err(never)) => match never {},
        Err(e) => bindings
            .iter()
            .map(|_| result(ResponseError::UnknownServerError, e.to_string()))
            .collect(),
    };
    Some(resp)
}
