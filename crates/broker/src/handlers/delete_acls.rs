//! DeleteAcls (key 31), versions 1-3: every ACL a filter matches is
//! removed by the controller (`gregor_metadata::acls::delete_acls`); each
//! filter's result lists the ACLs it matched.

use gregor_metadata::acls;
use gregor_security::acl::AclOperation;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};

use super::acl_util::{self, NO_AUTHORIZER};
use super::util::str_bytes;
use super::RequestContext;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteAclsRequest,
) -> Option<DeleteAclsResponse> {
    let failed = |code: ResponseError, message: String| {
        let mut r = DeleteAclsFilterResult::default();
        r.error_code = code.code();
        r.error_message = Some(str_bytes(message));
        r
    };
    let mut resp = DeleteAclsResponse::default();
    if broker.config.authorizer.is_none() {
        resp.filter_results = req
            .filters
            .iter()
            .map(|_| failed(ResponseError::SecurityDisabled, NO_AUTHORIZER.into()))
            .collect();
        return Some(resp);
    }
    if !acl_util::authorize_cluster(broker, ctx, AclOperation::Alter) {
        resp.filter_results = req
            .filters
            .iter()
            .map(|_| {
                let mut r = DeleteAclsFilterResult::default();
                r.error_code = ResponseError::ClusterAuthorizationFailed.code();
                r
            })
            .collect();
        return Some(resp);
    }
    let filters: Vec<_> = req
        .filters
        .iter()
        .map(|f| {
            acl_util::filter(
                f.resource_type_filter,
                &f.resource_name_filter,
                f.pattern_type_filter,
                &f.principal_filter,
                &f.host_filter,
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let outcome = broker
        .controller_update(|image| {
            Ok::<_, std::convert::Infallible>(acls::delete_acls(image, &filters))
        })
        .await;
    resp.filter_results = match outcome {
        Ok(Ok(results)) => results
            .into_iter()
            .map(|r| match r {
                Err(e) => failed(ResponseError::InvalidRequest, e.to_string()),
                Ok(bindings) => {
                    let mut fr = DeleteAclsFilterResult::default();
                    fr.matching_acls = bindings
                        .into_iter()
                        .map(|b| {
                            let mut m = DeleteAclsMatchingAcl::default();
                            m.resource_type = b.pattern.resource_type.code();
                            m.resource_name = str_bytes(b.pattern.name);
                            m.pattern_type = b.pattern.pattern_type.code();
                            m.principal = str_bytes(b.entry.principal);
                            m.host = str_bytes(b.entry.host);
                            m.operation = b.entry.operation.code();
                            m.permission_type = b.entry.permission.code();
                            m
                        })
                        .collect();
                    fr
                }
            })
            .collect(),
        Ok(Err(never)) => match never {},
        Err(e) => filters
            .iter()
            .map(|_| failed(ResponseError::UnknownServerError, e.to_string()))
            .collect(),
    };
    Some(resp)
}
