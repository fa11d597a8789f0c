//! DescribeAcls (key 29), versions 1-3: the ACLs one filter selects, from
//! this broker's metadata image, grouped by resource pattern as Kafka does.

use std::collections::BTreeMap;

use gregor_metadata::acls;
use gregor_security::acl::AclOperation;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};

use super::acl_util::{self, NO_AUTHORIZER};
use super::util::str_bytes;
use super::RequestContext;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeAclsRequest,
) -> Option<DescribeAclsResponse> {
    let mut resp = DescribeAclsResponse::default();
    let fail = |resp: &mut DescribeAclsResponse, code: ResponseError, message: String| {
        resp.error_code = code.code();
        resp.error_message = Some(str_bytes(message));
    };
    if broker.config.authorizer.is_none() {
        fail(
            &mut resp,
            ResponseError::SecurityDisabled,
            NO_AUTHORIZER.into(),
        );
        return Some(resp);
    }
    if !acl_util::authorize_cluster(broker, ctx, AclOperation::Describe) {
        resp.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return Some(resp);
    }
    let filter = acl_util::filter(
        req.resource_type_filter,
        &req.resource_name_filter,
        req.pattern_type_filter,
        &req.principal_filter,
        &req.host_filter,
        req.operation,
        req.permission_type,
    );
    match acls::describe_acls(&broker.metadata.image(), &filter) {
        Err(e) => fail(&mut resp, ResponseError::InvalidRequest, e.to_string()),
        Ok(bindings) => {
            let mut by_pattern = BTreeMap::new();
            for b in bindings {
                by_pattern
                    .entry(b.pattern)
                    .or_insert_with(Vec::new)
                    .push(b.entry);
            }
            for (pattern, entries) in by_pattern {
                let mut r = DescribeAclsResource::default();
                r.resource_type = pattern.resource_type.code();
                r.resource_name = str_bytes(pattern.name);
                r.pattern_type = pattern.pattern_type.code();
                r.acls = entries
                    .into_iter()
                    .map(|e| {
                        let mut d = AclDescription::default();
                        d.principal = str_bytes(e.principal);
                        d.host = str_bytes(e.host);
                        d.operation = e.operation.code();
                        d.permission_type = e.permission.code();
                        d
                    })
                    .collect();
                resp.resources.push(r);
            }
        }
    }
    Some(resp)
}
