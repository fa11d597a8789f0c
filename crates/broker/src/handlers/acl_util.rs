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
