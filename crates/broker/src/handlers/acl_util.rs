//! What the three ACL handlers share: the wire fields to and from
//! `gregor_security::acl` types, and Kafka's answer without an authorizer.

use gregor_security::acl::{
    AccessControlEntryFilter, AclBindingFilter, AclOperation, PatternType, PermissionType,
    ResourcePatternFilter, ResourceType,
};
use std::sync::Arc;

use gregor_metadata::MetadataImage;
use gregor_security::acl::{Authorizer, Decision, CLUSTER_RESOURCE_NAME};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use crate::broker::Broker;

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

/// The authorization view of one request: the caller (principal and
/// host) and the ACLs of one metadata image, so a request with many
/// resources reads the image once. Without an authorizer everything is
/// allowed. The listener plays no part: other brokers are authorized by
/// their principal as Kafka does it (CLUSTER_ACTION on the cluster for a
/// follower's Fetch, WriteTxnMarkers, the verification form of
/// AddPartitionsToTxn...), which they hold by being in `super.users` or
/// by an ACL. On a PLAINTEXT inter-broker listener that principal is
/// `User:ANONYMOUS`.
pub struct Authz<'a> {
    check: Option<Check<'a>>,
}

struct Check<'a> {
    authorizer: &'a Authorizer,
    image: Arc<MetadataImage>,
    principal: String,
    host: String,
}

impl<'a> Authz<'a> {
    pub fn new(broker: &'a Broker, ctx: &RequestContext) -> Self {
        let Some(authorizer) = &broker.config.authorizer else {
            return Authz { check: None };
        };
        Authz {
            check: Some(Check {
                authorizer,
                image: broker.metadata.image(),
                principal: ctx.connection.principal().to_string(),
                host: ctx
                    .connection
                    .peer
                    .map(|p| p.ip().to_string())
                    .unwrap_or_default(),
            }),
        }
    }

    /// May the caller do `op` on `(resource_type, name)`?
    pub fn allows(&self, op: AclOperation, resource_type: ResourceType, name: &str) -> bool {
        let Some(c) = &self.check else {
            return true;
        };
        c.authorizer.authorize(
            c.image.acls().map(|(_, b)| b),
            &c.principal,
            &c.host,
            op,
            resource_type,
            name,
        ) == Decision::Allowed
    }

    /// `op` on the cluster resource.
    pub fn allows_cluster(&self, op: AclOperation) -> bool {
        self.allows(op, ResourceType::Cluster, CLUSTER_RESOURCE_NAME)
    }

    /// May the caller do `op` on some resource of the type (Kafka's
    /// `authorizeByResourceType`)?
    pub fn allows_any(&self, op: AclOperation, resource_type: ResourceType) -> bool {
        let Some(c) = &self.check else {
            return true;
        };
        c.authorizer.authorize_by_resource_type(
            c.image.acls().map(|(_, b)| b),
            &c.principal,
            &c.host,
            op,
            resource_type,
        ) == Decision::Allowed
    }

    /// The cluster's authorized operations, as Metadata and DescribeCluster
    /// report them: none at all without DESCRIBE on the cluster (Kafka's
    /// handlers), else every allowed one.
    pub fn cluster_operations(&self) -> i32 {
        if !self.allows_cluster(AclOperation::Describe) {
            return 0;
        }
        self.operations(ResourceType::Cluster, CLUSTER_RESOURCE_NAME)
    }

    /// The authorized-operations bit set (bits are AclOperation codes) of
    /// `(resource_type, name)`, over the operations Kafka lists for that
    /// resource type, as Metadata, DescribeCluster and DescribeGroups report
    /// when asked.
    pub fn operations(&self, resource_type: ResourceType, name: &str) -> i32 {
        supported_operations(resource_type)
            .iter()
            .filter(|&&op| self.allows(op, resource_type, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }
}

/// Kafka's `AclEntry.supportedOperations`: what may be asked of each
/// resource type.
pub fn supported_operations(resource_type: ResourceType) -> &'static [AclOperation] {
    use AclOperation as Op;
    match resource_type {
        ResourceType::Topic => &[
            Op::Read,
            Op::Write,
            Op::Create,
            Op::Describe,
            Op::Delete,
            Op::Alter,
            Op::DescribeConfigs,
            Op::AlterConfigs,
        ],
        ResourceType::Group => &[Op::Read, Op::Describe, Op::Delete],
        ResourceType::Cluster => &[
            Op::Create,
            Op::ClusterAction,
            Op::DescribeConfigs,
            Op::AlterConfigs,
            Op::IdempotentWrite,
            Op::Alter,
            Op::Describe,
        ],
        ResourceType::TransactionalId => &[Op::Describe, Op::Write],
        ResourceType::DelegationToken => &[Op::Describe],
        _ => &[],
    }
}

/// [`Authz::allows`] for one question.
pub fn authorize(
    broker: &Broker,
    ctx: &RequestContext,
    op: AclOperation,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    Authz::new(broker, ctx).allows(op, resource_type, name)
}

/// The CLUSTER check of the ACL APIs (DESCRIBE for DescribeAcls, ALTER to
/// create or delete), as Kafka's `AclApis`.
pub fn authorize_cluster(broker: &Broker, ctx: &RequestContext, op: AclOperation) -> bool {
    Authz::new(broker, ctx).allows_cluster(op)
}

/// The check of a config resource (DescribeConfigs with DESCRIBE_CONFIGS,
/// AlterConfigs and IncrementalAlterConfigs with ALTER_CONFIGS), as Kafka's
/// `ConfigHelper` makes it: brokers and broker loggers (and client metrics)
/// on the cluster, topics and groups on themselves. The error to answer
/// when refused (with a null message, as Kafka's `ApiError(error, null)`).
pub fn config_resource_refusal(
    authz: &Authz,
    op: AclOperation,
    resource_type: i8,
    name: &str,
) -> Option<kafka_protocol::error::ResponseError> {
    use kafka_protocol::error::ResponseError as E;
    const TOPIC: i8 = 2;
    const GROUP: i8 = 32;
    let (allowed, error) = match resource_type {
        TOPIC => (
            authz.allows(op, ResourceType::Topic, name),
            E::TopicAuthorizationFailed,
        ),
        GROUP => (
            authz.allows(op, ResourceType::Group, name),
            E::GroupAuthorizationFailed,
        ),
        _ => (authz.allows_cluster(op), E::ClusterAuthorizationFailed),
    };
    (!allowed).then_some(error)
}
