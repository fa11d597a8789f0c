//! `gregor configs`: kafka-configs.sh for topics, brokers, broker defaults
//! and groups (describe, and alter through IncrementalAlterConfigs).

use anyhow::{anyhow, bail};
use clap::{ArgAction, ArgGroup, Args};
use gregor_client::admin::{
    AlterConfigOp, ConfigEntry, ConfigResource, ConfigSource, ConfigSynonym,
};
use gregor_client::Admin;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;

use super::{block_on, client_err, Conn};

pub const EXAMPLES: &str = "Examples:
  gregor configs --describe --entity-type topics --entity-name orders
  gregor configs --describe --topic orders --all
  gregor configs --alter --topic orders --add-config retention.ms=86400000,cleanup.policy=[compact,delete]
  gregor configs --alter --topic orders --delete-config retention.ms
  gregor configs --describe --broker 1
  gregor configs --alter --broker-defaults --add-config log.retention.ms=3600000
  gregor configs --alter --entity-type groups --entity-name my-group --add-config consumer.session.timeout.ms=50000
  gregor configs --describe --group my-group --all
  gregor configs --alter --entity-type users --entity-name alice --add-config 'SCRAM-SHA-256=[iterations=8192,password=alice-secret]'
  gregor configs --alter --entity-type users --entity-name alice --delete-config SCRAM-SHA-512
  gregor configs --describe --entity-type users --entity-name alice
  gregor configs --alter --entity-type clients --entity-name my-app --add-config producer_byte_rate=1024,consumer_byte_rate=2048
  gregor configs --alter --entity-type users --entity-name alice --entity-type clients --entity-default --add-config request_percentage=50
  gregor configs --alter --entity-type users --entity-default --delete-config producer_byte_rate
  gregor configs --describe --entity-type clients";

/// Describe or alter the configs of topics, brokers and groups, users' SCRAM credentials and client quotas.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("action").required(true).args(["describe", "alter"])))]
pub struct ConfigsArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// List configs for the given entity.
    #[arg(long)]
    pub describe: bool,
    /// Alter the configuration of the entity.
    #[arg(long)]
    pub alter: bool,
    /// Type of entity: topics, brokers, broker-loggers, groups, users or
    /// clients (users and clients may be given together, each followed by
    /// its --entity-name or --entity-default).
    #[arg(long = "entity-type", value_name = "TYPE", action = ArgAction::Append)]
    pub entity_type: Vec<String>,
    /// Name of the entity (a topic name, a broker id, a group id, a user
    /// name or a client id). --entity-default: the default of the type
    /// (the cluster-wide broker default, the default user or client id).
    #[arg(
        long = "entity-name",
        value_name = "NAME",
        visible_alias = "entity-default",
        num_args = 0..=1,
        default_missing_value = DEFAULT_ENTITY,
        action = ArgAction::Append
    )]
    pub entity_name: Vec<String>,
    /// Same as --entity-type topics --entity-name TOPIC.
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,
    /// Same as --entity-type brokers --entity-name ID.
    #[arg(long, value_name = "ID")]
    pub broker: Option<String>,
    /// Same as --entity-type brokers --entity-default.
    #[arg(long = "broker-defaults")]
    pub broker_defaults: bool,
    /// Same as --entity-type broker-loggers --entity-name ID.
    #[arg(long = "broker-logger", value_name = "ID")]
    pub broker_logger: Option<String>,
    /// Same as --entity-type groups --entity-name GROUP.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Configs to set: k1=v1,k2=[v1,v2,v2],k3=v3 (square brackets group values with commas).
    #[arg(long = "add-config", value_name = "K=V,...")]
    pub add_config: Option<String>,
    /// Config keys to remove: k1,k2.
    #[arg(long = "delete-config", value_name = "K,...", value_delimiter = ',')]
    pub delete_config: Vec<String>,
    /// With --describe: every config with its value, not only dynamic ones.
    #[arg(long)]
    pub all: bool,
}

/// The name `--entity-default` stands for (Kafka's `ConfigEntityName.DEFAULT`).
pub const DEFAULT_ENTITY: &str = "<default>";

impl ConfigsArgs {
    /// Whether the (single) entity is the type's default.
    pub fn entity_default(&self) -> bool {
        self.entity_name.len() == 1 && self.entity_name[0] == DEFAULT_ENTITY
    }

    /// The (single) entity name given, not the default.
    pub fn single_name(&self) -> Option<String> {
        self.entity_name
            .first()
            .filter(|n| *n != DEFAULT_ENTITY)
            .cloned()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Topics,
    Brokers,
    BrokerLoggers,
    Groups,
}

impl Kind {
    fn plural(self) -> &'static str {
        match self {
            Kind::Topics => "topics",
            Kind::Brokers => "brokers",
            Kind::BrokerLoggers => "broker-loggers",
            Kind::Groups => "groups",
        }
    }
    fn singular(self) -> &'static str {
        match self {
            Kind::Topics => "topic",
            Kind::Brokers => "broker",
            Kind::BrokerLoggers => "broker-logger",
            Kind::Groups => "group",
        }
    }
    /// DescribeConfigs / IncrementalAlterConfigs resource type.
    fn wire(self) -> i8 {
        match self {
            Kind::Topics => 2,
            Kind::Brokers => 4,
            Kind::BrokerLoggers => 8,
            Kind::Groups => 32,
        }
    }
    /// Whether names are broker ids.
    fn by_broker_id(self) -> bool {
        matches!(self, Kind::Brokers | Kind::BrokerLoggers)
    }
}

/// The entity: its type and name (`Some("")` is the broker default, `None` all entities).
fn entity(args: &ConfigsArgs) -> anyhow::Result<(Kind, Option<String>)> {
    let mut found: Vec<(Kind, Option<String>)> = Vec::new();
    if let Some(t) = &args.topic {
        found.push((Kind::Topics, Some(t.clone())));
    }
    if let Some(b) = &args.broker {
        found.push((Kind::Brokers, Some(b.clone())));
    }
    if args.broker_defaults {
        found.push((Kind::Brokers, Some(String::new())));
    }
    if let Some(b) = &args.broker_logger {
        found.push((Kind::BrokerLoggers, Some(b.clone())));
    }
    if let Some(g) = &args.group {
        found.push((Kind::Groups, Some(g.clone())));
    }
    if args.entity_type.len() > 1 || args.entity_name.len() > 1 {
        bail!("Only users and clients may be given together as one entity");
    }
    if let Some(t) = args.entity_type.first() {
        let kind = match t.as_str() {
            "topics" => Kind::Topics,
            "brokers" => Kind::Brokers,
            "broker-loggers" => Kind::BrokerLoggers,
            "groups" => Kind::Groups,
            "client-metrics" => {
                bail!("Entity type '{t}' is not supported by gregor (use topics, brokers, broker-loggers, groups, users, clients or ips)")
            }
            _ => bail!("Invalid entity type '{t}': use topics, brokers, broker-loggers, groups, users, clients or ips"),
        };
        let name = if args.entity_default() {
            if kind != Kind::Brokers {
                bail!("--entity-default is only valid with --entity-type brokers");
            }
            Some(String::new())
        } else {
            args.single_name()
        };
        found.push((kind, name));
    } else if !args.entity_name.is_empty() {
        bail!("--entity-name and --entity-default need --entity-type");
    }
    if found.len() != 1 {
        bail!("Exactly one entity must be given: --entity-type with --entity-name or --entity-default, or one of --topic, --broker, --broker-defaults, --broker-logger, --group");
    }
    let (kind, name) = found.remove(0);
    if let Some(n) = &name {
        if kind.by_broker_id() && !n.is_empty() && n.parse::<i32>().is_err() {
            bail!(
                "The entity name for {} must be a valid integer broker id, found: {n}",
                kind.plural()
            );
        }
        if kind == Kind::Topics && n.is_empty() {
            bail!("A topic name must not be empty");
        }
        if kind == Kind::Groups && n.is_empty() {
            bail!("A group name must not be empty");
        }
    }
    Ok((kind, name))
}

pub fn run(args: ConfigsArgs) -> anyhow::Result<()> {
    if super::configs_quotas::is_quota_command(&args) {
        return super::configs_quotas::run(args);
    }
    if args.entity_type.first().map(String::as_str) == Some("users") {
        return super::configs_users::run(args);
    }
    let (kind, name) = entity(&args)?;
    if args.describe && (args.add_config.is_some() || !args.delete_config.is_empty()) {
        bail!("--add-config and --delete-config are only valid with --alter");
    }
    if args.alter {
        if name.is_none() {
            bail!("An entity name must be specified with --alter");
        }
        if args.add_config.is_none() && args.delete_config.is_empty() {
            bail!("--alter needs --add-config or --delete-config");
        }
        if args.all {
            bail!("--all is only valid with --describe");
        }
    }
    let admin = args.conn.admin()?;
    let config = args.conn.client_config(&[])?;
    block_on(async move {
        let raw = Raw::new(config);
        let r = if args.alter {
            alter(&admin, &raw, kind, name.unwrap_or_default(), &args).await
        } else {
            describe(&admin, &raw, kind, name, args.all).await
        };
        admin.close().await;
        r
    })
}

/// Parses `--add-config`: commas separate pairs except inside `[...]`,
/// whose brackets are dropped.
pub(super) fn parse_add_config(s: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut items = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    items.push(cur);
    items
        .into_iter()
        .filter(|i| !i.trim().is_empty())
        .map(|i| {
            let (k, v) = i.split_once('=').ok_or_else(|| {
                anyhow!("Invalid entity config: all configs to be added must be in the format \"key=val\" or \"key=[val1,val2]\" to group values which contain commas.")
            })?;
            let key = k.trim();
            if key.is_empty()
                || !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "$._-".contains(c))
            {
                bail!("Invalid character found for config key: {key}");
            }
            let value: String = v.chars().filter(|c| *c != '[' && *c != ']').collect();
            Ok((key.to_string(), value.trim().to_string()))
        })
        .collect()
}

async fn alter(
    admin: &Admin,
    raw: &Raw,
    kind: Kind,
    name: String,
    args: &ConfigsArgs,
) -> anyhow::Result<()> {
    let adds = match &args.add_config {
        Some(s) => parse_add_config(s)?,
        None => Vec::new(),
    };
    let deletes: Vec<String> = args
        .delete_config
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if kind == Kind::Topics {
        ensure_topic(admin, &name).await?;
    }
    // Deleting a key that has no dynamic value is an error, as in Kafka.
    if !deletes.is_empty() {
        let current = resource_configs(admin, raw, kind, &name, false).await?;
        let invalid: Vec<&str> = deletes
            .iter()
            .filter(|d| !current.iter().any(|c| &c.name == *d))
            .map(String::as_str)
            .collect();
        if !invalid.is_empty() {
            bail!("Invalid config(s): {}", invalid.join(","));
        }
    }
    let ops: Vec<AlterConfigOp> = deletes
        .iter()
        .map(AlterConfigOp::delete)
        .chain(adds.iter().map(|(k, v)| AlterConfigOp::set(k, v)))
        .collect();
    match (kind, name.is_empty()) {
        (Kind::Brokers, true) | (Kind::Groups, _) => {
            raw.incremental_alter(kind.wire(), &name, &ops).await?
        }
        _ => admin
            .incremental_alter_configs(&resource(kind, &name)?, &ops, false)
            .await
            .map_err(client_err)?,
    }
    if name.is_empty() {
        println!(
            "Completed updating default config for {} in the cluster.",
            kind.plural()
        );
    } else {
        println!("Completed updating config for {} {name}.", kind.singular());
    }
    Ok(())
}

fn resource(kind: Kind, name: &str) -> anyhow::Result<ConfigResource> {
    let broker = || {
        name.parse::<i32>()
            .map_err(|_| anyhow!("'{name}' is not a broker id"))
    };
    Ok(match kind {
        Kind::Topics => ConfigResource::Topic(name.to_string()),
        Kind::Brokers => ConfigResource::Broker(broker()?),
        Kind::BrokerLoggers => ConfigResource::BrokerLogger(broker()?),
        Kind::Groups => bail!("group configs are sent with raw requests"),
    })
}

async fn ensure_topic(admin: &Admin, name: &str) -> anyhow::Result<()> {
    let topics = admin.list_topics(true).await.map_err(client_err)?;
    if !topics.iter().any(|t| t.name == name) {
        bail!("Topic '{name}' does not exist");
    }
    Ok(())
}

/// A resource's configs, sorted by name; only the dynamic ones unless `all`.
async fn resource_configs(
    admin: &Admin,
    raw: &Raw,
    kind: Kind,
    name: &str,
    all: bool,
) -> anyhow::Result<Vec<ConfigEntry>> {
    let mut entries = if (kind == Kind::Brokers && name.is_empty()) || kind == Kind::Groups {
        raw.describe(kind.wire(), name).await?
    } else {
        let r = resource(kind, name)?;
        admin
            .describe_configs(std::slice::from_ref(&r))
            .await
            .map_err(client_err)?
            .remove(&r)
            .unwrap_or_default()
    };
    let dynamic = match (kind, name.is_empty()) {
        (Kind::Topics, _) => Some(ConfigSource::DynamicTopic),
        (Kind::Brokers, true) => Some(ConfigSource::DynamicDefaultBroker),
        (Kind::Brokers, false) => Some(ConfigSource::DynamicBroker),
        (Kind::BrokerLoggers, _) => None,
        (Kind::Groups, _) => Some(GROUP_CONFIG_SOURCE),
    };
    if !all {
        if let Some(d) = dynamic {
            entries.retain(|e| e.source == d);
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

async fn describe(
    admin: &Admin,
    raw: &Raw,
    kind: Kind,
    name: Option<String>,
    all: bool,
) -> anyhow::Result<()> {
    let entities: Vec<String> = match name {
        Some(n) => {
            if !all && !n.is_empty() && kind != Kind::Groups {
                let exists = match kind {
                    Kind::Topics => admin
                        .list_topics(true)
                        .await
                        .map_err(client_err)?
                        .iter()
                        .any(|t| t.name == n),
                    Kind::Brokers | Kind::BrokerLoggers | Kind::Groups => admin
                        .describe_cluster()
                        .await
                        .map_err(client_err)?
                        .brokers
                        .iter()
                        .any(|b| b.node_id.to_string() == n),
                };
                if !exists {
                    println!(
                        "The {} '{n}' doesn't exist and doesn't have dynamic config.",
                        kind.singular()
                    );
                    return Ok(());
                }
            }
            vec![n]
        }
        None => match kind {
            Kind::Topics => admin
                .list_topics(true)
                .await
                .map_err(client_err)?
                .into_iter()
                .map(|t| t.name)
                .collect(),
            Kind::Groups => admin
                .list_groups()
                .await
                .map_err(client_err)?
                .into_iter()
                .map(|g| g.group_id)
                .collect(),
            Kind::Brokers | Kind::BrokerLoggers => {
                let mut ids: Vec<String> = admin
                    .describe_cluster()
                    .await
                    .map_err(client_err)?
                    .brokers
                    .iter()
                    .map(|b| b.node_id.to_string())
                    .collect();
                if kind == Kind::Brokers {
                    ids.push(String::new());
                }
                ids
            }
        },
    };
    let mut out = String::new();
    for e in entities {
        if e.is_empty() {
            out.push_str(&format!(
                "Default configs for {} in the cluster are:\n",
                kind.plural()
            ));
        } else {
            out.push_str(&format!(
                "{} configs for {} {e} are:\n",
                if all { "All" } else { "Dynamic" },
                kind.singular()
            ));
        }
        for c in resource_configs(admin, raw, kind, &e, all).await? {
            out.push_str(&format_entry(&c));
        }
    }
    print!("{out}");
    Ok(())
}

/// `  name=value sensitive=false synonyms={SOURCE:name=value, ...}`
fn format_entry(c: &ConfigEntry) -> String {
    let synonyms: Vec<String> = c
        .synonyms
        .iter()
        .map(|s| {
            format!(
                "{}:{}={}",
                source_name(s.source),
                s.name,
                s.value.as_deref().unwrap_or("null")
            )
        })
        .collect();
    format!(
        "  {}={} sensitive={} synonyms={{{}}}\n",
        c.name,
        c.value.as_deref().unwrap_or("null"),
        c.is_sensitive,
        synonyms.join(", ")
    )
}

/// DescribeConfigs `config_source` of a group's own setting (Kafka's GROUP_CONFIG).
const GROUP_CONFIG_SOURCE: ConfigSource = ConfigSource::Other(8);

/// Kafka's name of a config source, including those the client has no variant for.
fn source_name(s: ConfigSource) -> &'static str {
    match s {
        ConfigSource::Other(7) => "DYNAMIC_CLIENT_METRICS_CONFIG",
        GROUP_CONFIG_SOURCE => "DYNAMIC_GROUP_CONFIG",
        other => other.name(),
    }
}

/// Direct DescribeConfigs / IncrementalAlterConfigs for the cluster-wide
/// broker default (resource name "") and for groups, which `ConfigResource`
/// cannot name.
struct Raw {
    config: gregor_client::ClientConfig,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn source(v: i8) -> ConfigSource {
    match v {
        1 => ConfigSource::DynamicTopic,
        2 => ConfigSource::DynamicBroker,
        3 => ConfigSource::DynamicDefaultBroker,
        4 => ConfigSource::StaticBroker,
        5 => ConfigSource::Default,
        6 => ConfigSource::DynamicBrokerLogger,
        0 => ConfigSource::Unknown,
        o => ConfigSource::Other(o),
    }
}

impl Raw {
    fn new(config: gregor_client::ClientConfig) -> Raw {
        Raw { config }
    }

    async fn describe(&self, rtype: i8, name: &str) -> anyhow::Result<Vec<ConfigEntry>> {
        let req = DescribeConfigsRequest::default()
            .with_include_synonyms(true)
            .with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(rtype)
                .with_resource_name(sb(name))
                .with_configuration_keys(None)]);
        let resp = super::wire::request(&self.config, 4, &req).await?;
        let r = resp
            .results
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("DescribeConfigs: empty response"))?;
        gregor_client::Error::check(r.error_code, r.error_message.as_deref())
            .map_err(client_err)?;
        Ok(r.configs
            .into_iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                source: source(c.config_source),
                read_only: c.read_only,
                is_sensitive: c.is_sensitive,
                synonyms: c
                    .synonyms
                    .into_iter()
                    .map(|s| ConfigSynonym {
                        name: s.name.to_string(),
                        value: s.value.map(|v| v.to_string()),
                        source: source(s.source),
                    })
                    .collect(),
            })
            .collect())
    }

    async fn incremental_alter(
        &self,
        rtype: i8,
        name: &str,
        ops: &[AlterConfigOp],
    ) -> anyhow::Result<()> {
        use gregor_client::admin::OpType;
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(rtype)
                .with_resource_name(sb(name))
                .with_configs(
                    ops.iter()
                        .map(|o| {
                            AlterableConfig::default()
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
        let resp = super::wire::request(&self.config, 1, &req).await?;
        for r in resp.responses {
            gregor_client::Error::check(r.error_code, r.error_message.as_deref())
                .map_err(client_err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_config_parsing() {
        let v = parse_add_config("a=1,b=[x,y],c=").unwrap();
        assert_eq!(
            v,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x,y".into()),
                ("c".into(), "".into())
            ]
        );
        assert!(parse_add_config("novalue").is_err());
        assert!(parse_add_config("bad key=1").is_err());
    }
}
