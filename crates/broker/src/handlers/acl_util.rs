//! What the three ACL handlers share: the wire fields to and from
//! `gregor_security::acl` types, and Kafka's answer without an authorizer.

use gregor_security::acl::{
    AccessControlEntryFilter, AclBindingFilter, AclOperation, PatternType, PermissionType,
    ResourcePatternFilter, ResourceType,
};
use kafka_protocol::protocol::StrBytes;

/// Kafka's message when `authorizer.class.name` is not set (SECURITY_DISABLED).
pub const NO_AUTHORIZER: &str = "No Authorizer is configured.";

/// The filter DescribeAcls and DeleteAcls carry, field by field.
#[allow(clippy::too_many_arguments)]
pub fn filter(
    resource_type: i8,
    name: &Option<StrBytes>,
    pattern_type: i8,
    principal: &Option<StrBytes>,
    host: &Option<StrBytes>,
    operation: i8,
    permission: i8,
) -> AclBindingFilter {
    AclBindingFilter {
        pattern: ResourcePatternFilter {
            resource_type: ResourceType::from_code(resource_type),
            name: name.as_ref().map(|s| s.to_string()),
            pattern_type: PatternType::from_code(pattern_type),
        },
        entry: AccessControlEntryFilter {
            principal: principal.as_ref().map(|s| s.to_string()),
            host: host.as_ref().map(|s| s.to_string()),
            operation: AclOperation::from_code(operation),
            permission: PermissionType::from_code(permission),
        },
    }
}

/// May the principal of the request's connection do `op` on the resource
/// `(resource_type, name)`? Always, without an authorizer. Requests on the
/// inter-broker listener are treated as a super user's: other brokers come
/// as `User:ANONYMOUS` on PLAINTEXT today, and Kafka would want
/// CLUSTER_ACTION from them (so, on a single listener, every client there
/// is one too: give clients a listener of their own).
pub fn authorize(
    broker: &crate::broker::Broker,
    ctx: &super::RequestContext,
    op: AclOperation,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    let Some(authorizer) = &broker.config.authorizer else {
        return true;
    };
    let inter_broker = broker
        .config
        .listeners
        .get(broker.config.inter_broker_listener)
        .is_some_and(|l| *l.listener.name == *ctx.connection.listener);
    if inter_broker {
        return true;
    }
    let principal = ctx.connection.principal().to_string();
    let host = ctx
        .connection
        .peer
        .map(|p| p.ip().to_string())
        .unwrap_or_default();
    let image = broker.metadata.image();
    authorizer.authorize(
        image.acls().map(|(_, b)| b),
        &principal,
        &host,
        op,
        resource_type,
        name,
    ) == gregor_security::acl::Decision::Allowed
}

/// The CLUSTER check of the ACL APIs (DESCRIBE for DescribeAcls, ALTER to
/// create or delete), as Kafka's `AclApis`.
pub fn authorize_cluster(
    broker: &crate::broker::Broker,
    ctx: &super::RequestContext,
    op: AclOperation,
) -> bool {
    authorize(
        broker,
        ctx,
        op,
        ResourceType::Cluster,
        gregor_security::acl::CLUSTER_RESOURCE_NAME,
    )
}
