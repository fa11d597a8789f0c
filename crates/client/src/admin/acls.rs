//! DescribeAcls, CreateAcls and DeleteAcls, in `gregor_security::acl`'s
//! model (Kafka's `AclBinding` / `AclBindingFilter`).

use gregor_security::acl::{
    AccessControlEntry, AclBinding, AclBindingFilter, AclOperation, PatternType, PermissionType,
    ResourcePattern, ResourceType,
};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};

use super::Admin;
use crate::error::{Error, Result};
use crate::group_ops::sb;

#[allow(clippy::too_many_arguments)]
fn binding(
    rt: i8,
    name: &str,
    pt: i8,
    principal: &str,
    host: &str,
    op: i8,
    perm: i8,
) -> AclBinding {
    AclBinding {
        pattern: ResourcePattern {
            resource_type: ResourceType::from_code(rt),
            name: name.to_string(),
            pattern_type: PatternType::from_code(pt),
        },
        entry: AccessControlEntry {
            principal: principal.to_string(),
            host: host.to_string(),
            operation: AclOperation::from_code(op),
            permission: PermissionType::from_code(perm),
        },
    }
}

impl Admin {
    /// Creates the ACLs; one result per binding, in order.
    pub async fn create_acls(&self, bindings: &[AclBinding]) -> Result<Vec<Result<()>>> {
        let req = CreateAclsRequest::default().with_creations(
            bindings
                .iter()
                .map(|b| {
                    AclCreation::default()
                        .with_resource_type(b.pattern.resource_type.code())
                        .with_resource_name(sb(&b.pattern.name))
                        .with_resource_pattern_type(b.pattern.pattern_type.code())
                        .with_principal(sb(&b.entry.principal))
                        .with_host(sb(&b.entry.host))
                        .with_operation(b.entry.operation.code())
                        .with_permission_type(b.entry.permission.code())
                })
                .collect(),
        );
        let conn = self.cluster.any_connection().await?;
        let resp = conn.send(&req).await?;
        if resp.results.len() != bindings.len() {
            return Err(Error::protocol(
                "CreateAcls",
                "one result per binding expected",
            ));
        }
        Ok(resp
            .results
            .iter()
            .map(|r| Error::check(r.error_code, r.error_message.as_deref()))
            .collect())
    }

    /// The ACLs `filter` selects.
    pub async fn describe_acls(&self, filter: &AclBindingFilter) -> Result<Vec<AclBinding>> {
        let req = DescribeAclsRequest::default()
            .with_resource_type_filter(filter.pattern.resource_type.code())
            .with_resource_name_filter(filter.pattern.name.as_deref().map(sb))
            .with_pattern_type_filter(filter.pattern.pattern_type.code())
            .with_principal_filter(filter.entry.principal.as_deref().map(sb))
            .with_host_filter(filter.entry.host.as_deref().map(sb))
            .with_operation(filter.entry.operation.code())
            .with_permission_type(filter.entry.permission.code());
        let conn = self.cluster.any_connection().await?;
        let resp = conn.send(&req).await?;
        Error::check(resp.error_code, resp.error_message.as_deref())?;
        Ok(resp
            .resources
            .iter()
            .flat_map(|r| {
                r.acls.iter().map(move |a| {
                    binding(
                        r.resource_type,
                        &r.resource_name,
                        r.pattern_type,
                        &a.principal,
                        &a.host,
                        a.operation,
                        a.permission_type,
                    )
                })
            })
            .collect())
    }

    /// Deletes the ACLs each filter matches; per filter, the ACLs deleted.
    pub async fn delete_acls(
        &self,
        filters: &[AclBindingFilter],
    ) -> Result<Vec<Result<Vec<AclBinding>>>> {
        let req = DeleteAclsRequest::default().with_filters(
            filters
                .iter()
                .map(|f| {
                    DeleteAclsFilter::default()
                        .with_resource_type_filter(f.pattern.resource_type.code())
                        .with_resource_name_filter(f.pattern.name.as_deref().map(sb))
                        .with_pattern_type_filter(f.pattern.pattern_type.code())
                        .with_principal_filter(f.entry.principal.as_deref().map(sb))
                        .with_host_filter(f.entry.host.as_deref().map(sb))
                        .with_operation(f.entry.operation.code())
                        .with_permission_type(f.entry.permission.code())
                })
                .collect(),
        );
        let conn = self.cluster.any_connection().await?;
        let resp = conn.send(&req).await?;
        if resp.filter_results.len() != filters.len() {
            return Err(Error::protocol(
                "DeleteAcls",
                "one result per filter expected",
            ));
        }
        Ok(resp
            .filter_results
            .iter()
            .map(|r| {
                Error::check(r.error_code, r.error_message.as_deref()).map(|()| {
                    r.matching_acls
                        .iter()
                        .map(|m| {
                            binding(
                                m.resource_type,
                                &m.resource_name,
                                m.pattern_type,
                                &m.principal,
                                &m.host,
                                m.operation,
                                m.permission_type,
                            )
                        })
                        .collect()
                })
            })
            .collect())
    }
}
