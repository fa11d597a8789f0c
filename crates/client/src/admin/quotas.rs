//! DescribeClientQuotas and AlterClientQuotas (KIP-546): client quotas of
//! user, client-id and ip entities. An entity is a list of (type, name)
//! parts; a `None` name is the type's default.

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};

use super::Admin;
use crate::error::{Error, Result};
use crate::group_ops::sb;

/// A client quota entity: (entity type, name or `None` for the default).
pub type ClientQuotaEntity = Vec<(String, Option<String>)>;

/// How a filter component matches an entity type (Kafka's
/// `ClientQuotaFilterComponent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaMatch {
    /// The entity has this type with exactly this name.
    Exact(String),
    /// The entity has this type's default.
    Default,
    /// The entity has this type, with any name.
    Any,
}

/// One change of [`Admin::alter_client_quotas`]: set `key` to the value,
/// or remove it (`None`).
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaAlteration {
    pub entity: ClientQuotaEntity,
    pub ops: Vec<(String, Option<f64>)>,
}

impl Admin {
    /// The entities (with their quotas) `components` select; `strict`: the
    /// entities have no other parts.
    pub async fn describe_client_quotas(
        &self,
        components: &[(String, QuotaMatch)],
        strict: bool,
    ) -> Result<Vec<(ClientQuotaEntity, Vec<(String, f64)>)>> {
        let req = DescribeClientQuotasRequest::default()
            .with_strict(strict)
            .with_components(
                components
                    .iter()
                    .map(|(t, m)| {
                        let (match_type, name) = match m {
                            QuotaMatch::Exact(n) => (0, Some(sb(n))),
                            QuotaMatch::Default => (1, None),
                            QuotaMatch::Any => (2, None),
                        };
                        ComponentData::default()
                            .with_entity_type(sb(t))
                            .with_match_type(match_type)
                            .with_match(name)
                    })
                    .collect(),
            );
        let conn = self.cluster.any_connection().await?;
        let resp = conn.send(&req).await?;
        Error::check(resp.error_code, resp.error_message.as_deref())?;
        Ok(resp
            .entries
            .unwrap_or_default()
            .into_iter()
            .map(|e| {
                let entity = e
                    .entity
                    .iter()
                    .map(|p| {
                        (
                            p.entity_type.to_string(),
                            p.entity_name.as_ref().map(|n| n.to_string()),
                        )
                    })
                    .collect();
                let values = e
                    .values
                    .iter()
                    .map(|v| (v.key.to_string(), v.value))
                    .collect();
                (entity, values)
            })
            .collect())
    }

    /// Applies the alterations (checks only, with `validate_only`); one
    /// result per entity, in request order.
    pub async fn alter_client_quotas(
        &self,
        alterations: &[QuotaAlteration],
        validate_only: bool,
    ) -> Result<Vec<Result<()>>> {
        let req = AlterClientQuotasRequest::default()
            .with_validate_only(validate_only)
            .with_entries(
                alterations
                    .iter()
                    .map(|a| {
                        EntryData::default()
                            .with_entity(
                                a.entity
                                    .iter()
                                    .map(|(t, n)| {
                                        EntityData::default()
                                            .with_entity_type(sb(t))
                                            .with_entity_name(n.as_deref().map(sb))
                                    })
                                    .collect(),
                            )
                            .with_ops(
                                a.ops
                                    .iter()
                                    .map(|(k, v)| {
                                        OpData::default()
                                            .with_key(sb(k))
                                            .with_value(v.unwrap_or(0.0))
                                            .with_remove(v.is_none())
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let conn = self.cluster.any_connection().await?;
        let resp = conn.send(&req).await?;
        Ok(resp
            .entries
            .iter()
            .map(|e| Error::check(e.error_code, e.error_message.as_deref()))
            .collect())
    }
}
