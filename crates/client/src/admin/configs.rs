//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs.
//!
//! Broker resources must be sent to that broker (each broker owns its own
//! dynamic configs); topic resources go to any broker.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    alter_configs_request, incremental_alter_configs_request, AlterConfigsRequest,
    DescribeConfigsRequest, IncrementalAlterConfigsRequest,
};

use super::Admin;
use crate::error::{Error, Result};
use crate::group_ops::sb;

/// Something that has configs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConfigResource {
    Topic(String),
    Broker(i32),
    BrokerLogger(i32),
}

impl ConfigResource {
    fn wire(&self) -> (i8, String) {
        match self {
            ConfigResource::Topic(t) => (2, t.clone()),
            ConfigResource::Broker(b) => (4, b.to_string()),
            ConfigResource::BrokerLogger(b) => (8, b.to_string()),
        }
    }
    /// The broker that must answer for this resource, if any.
    fn broker(&self) -> Option<i32> {
        match self {
            ConfigResource::Topic(_) => None,
            ConfigResource::Broker(b) | ConfigResource::BrokerLogger(b) => Some(*b),
        }
    }
}

/// Where a config value comes from (DescribeConfigs `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    Unknown,
    DynamicTopic,
    DynamicBroker,
    DynamicDefaultBroker,
    StaticBroker,
    Default,
    DynamicBrokerLogger,
    Other(i8),
}

impl ConfigSource {
    fn from_wire(v: i8) -> Self {
        match v {
            0 => ConfigSource::Unknown,
            1 => ConfigSource::DynamicTopic,
            2 => ConfigSource::DynamicBroker,
            3 => ConfigSource::DynamicDefaultBroker,
            4 => ConfigSource::StaticBroker,
            5 => ConfigSource::Default,
            6 => ConfigSource::DynamicBrokerLogger,
            o => ConfigSource::Other(o),
        }
    }
    /// Kafka's name (`DYNAMIC_TOPIC_CONFIG`, `DEFAULT_CONFIG`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            ConfigSource::Unknown | ConfigSource::Other(_) => "UNKNOWN",
            ConfigSource::DynamicTopic => "DYNAMIC_TOPIC_CONFIG",
            ConfigSource::DynamicBroker => "DYNAMIC_BROKER_CONFIG",
            ConfigSource::DynamicDefaultBroker => "DYNAMIC_DEFAULT_BROKER_CONFIG",
            ConfigSource::StaticBroker => "STATIC_BROKER_CONFIG",
            ConfigSource::Default => "DEFAULT_CONFIG",
            ConfigSource::DynamicBrokerLogger => "DYNAMIC_BROKER_LOGGER_CONFIG",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
}

/// One config of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    /// `None` for sensitive values and unset ones.
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub is_sensitive: bool,
    pub synonyms: Vec<ConfigSynonym>,
}

/// IncrementalAlterConfigs operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpType {
    Set,
    Delete,
    Append,
    Subtract,
}

/// One change for [`Admin::incremental_alter_configs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterConfigOp {
    pub name: String,
    pub op: OpType,
    pub value: Option<String>,
}

impl AlterConfigOp {
    pub fn set(name: impl Into<String>, value: impl Into<String>) -> Self {
        AlterConfigOp {
            name: name.into(),
            op: OpType::Set,
            value: Some(value.into()),
        }
    }
    pub fn delete(name: impl Into<String>) -> Self {
        AlterConfigOp {
            name: name.into(),
            op: OpType::Delete,
            value: None,
        }
    }
}

impl Admin {
    async fn config_connection(
        &self,
        resource: &ConfigResource,
    ) -> Result<std::sync::Arc<crate::conn::Connection>> {
        match resource.broker() {
            Some(b) => self.cluster.connection(b).await,
            None => self.cluster.any_connection().await,
        }
    }

    /// Every config entry of each resource, with its source and synonyms.
    pub async fn describe_configs(
        &self,
        resources: &[ConfigResource],
    ) -> Result<BTreeMap<ConfigResource, Vec<ConfigEntry>>> {
        let mut out = BTreeMap::new();
        // One request per resource keeps the broker routing simple; config
        // lookups are rare and small.
        for resource in resources {
            let (rtype, rname) = resource.wire();
            let req = DescribeConfigsRequest::default()
                .with_include_synonyms(true)
                .with_resources(vec![DescribeConfigsResource::default()
                    .with_resource_type(rtype)
                    .with_resource_name(sb(&rname))
                    .with_configuration_keys(None)]);
            let conn = self.config_connection(resource).await?;
            let resp = conn.send(&req).await?;
            let r = resp
                .results
                .into_iter()
                .next()
                .ok_or_else(|| Error::protocol("DescribeConfigs", "no result"))?;
            Error::check(r.error_code, r.error_message.as_deref())?;
            let entries = r
                .configs
                .into_iter()
                .map(|c| ConfigEntry {
                    name: c.name.to_string(),
                    value: c.value.map(|v| v.to_string()),
                    source: ConfigSource::from_wire(c.config_source),
                    read_only: c.read_only,
                    is_sensitive: c.is_sensitive,
                    synonyms: c
                        .synonyms
                        .into_iter()
                        .map(|s| ConfigSynonym {
                            name: s.name.to_string(),
                            value: s.value.map(|v| v.to_string()),
                            source: ConfigSource::from_wire(s.source),
                        })
                        .collect(),
                })
                .collect();
            out.insert(resource.clone(), entries);
        }
        Ok(out)
    }

    /// Replaces a resource's whole dynamic config (the legacy AlterConfigs:
    /// keys not given revert to their defaults).
    pub async fn alter_configs(
        &self,
        resource: &ConfigResource,
        configs: &BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<()> {
        let (rtype, rname) = resource.wire();
        let req = AlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(rtype)
                .with_resource_name(sb(&rname))
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            alter_configs_request::AlterableConfig::default()
                                .with_name(sb(k))
                                .with_value(Some(sb(v)))
                        })
                        .collect(),
                )]);
        let conn = self.config_connection(resource).await?;
        let resp = conn.send(&req).await?;
        for r in resp.responses {
            Error::check(r.error_code, r.error_message.as_deref())?;
        }
        Ok(())
    }

    /// Applies set/delete/append/subtract operations to a resource's config.
    pub async fn incremental_alter_configs(
        &self,
        resource: &ConfigResource,
        ops: &[AlterConfigOp],
        validate_only: bool,
    ) -> Result<()> {
        let (rtype, rname) = resource.wire();
        let req = IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(rtype)
                    .with_resource_name(sb(&rname))
                    .with_configs(
                        ops.iter()
                            .map(|o| {
                                incremental_alter_configs_request::AlterableConfig::default()
                                    .with_name(sb(&o.name))
                                    .with_config_operation(match o.op {
                                        OpType::Set => 0,
                                        OpType::Delete => 1,
                                        OpType::Append => 2,
                                        OpType::Subtract => 3,
                                    })
                                    .with_value(o.value.as_deref().map(sb))
                            })
                            .collect(),
                    ),
            ]);
        let conn = self.config_connection(resource).await?;
        let resp = conn.send(&req).await?;
        for r in resp.responses {
            Error::check(r.error_code, r.error_message.as_deref())?;
        }
        Ok(())
    }
}
