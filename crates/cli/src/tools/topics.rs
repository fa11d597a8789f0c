//! `gregor topics`: kafka-topics.sh (create, list, describe, alter, delete).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use clap::{ArgGroup, Args};
use gregor_client::admin::{ConfigEntry, ConfigResource, ConfigSource, NewTopic};
use gregor_client::Admin;

use super::{block_on, client_err, parse_kv, topic_id_string, Conn};

pub const EXAMPLES: &str = "Examples:
  gregor topics --bootstrap-server 127.0.0.1:9092 --create --topic orders --partitions 3
  gregor topics --create --topic compacted --config cleanup.policy=compact --if-not-exists
  gregor topics --list --exclude-internal
  gregor topics --describe --topic orders
  gregor topics --alter --topic orders --partitions 6
  gregor topics --delete --topic orders --if-exists";

/// Create, list, describe, alter (partition count) and delete topics.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("action").required(true).args(["create", "list", "describe", "alter", "delete"])))]
pub struct TopicsArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Create a new topic.
    #[arg(long)]
    pub create: bool,
    /// List all available topics.
    #[arg(long)]
    pub list: bool,
    /// List details for the given topics (all topics without --topic).
    #[arg(long)]
    pub describe: bool,
    /// Alter the number of partitions of a topic.
    #[arg(long)]
    pub alter: bool,
    /// Delete a topic.
    #[arg(long)]
    pub delete: bool,
    /// The topic to create, alter, describe or delete.
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,
    /// The number of partitions for the topic being created or altered.
    #[arg(long, value_name = "N")]
    pub partitions: Option<i32>,
    /// The replication factor for each partition of the topic being created.
    #[arg(long = "replication-factor", value_name = "R")]
    pub replication_factor: Option<i32>,
    /// A topic config override for the topic being created (repeatable).
    #[arg(long = "config", value_name = "NAME=VALUE")]
    pub config: Vec<String>,
    /// With --create: do nothing if the topic already exists.
    #[arg(long = "if-not-exists")]
    pub if_not_exists: bool,
    /// With --alter, --describe or --delete: do nothing if the topic does not exist.
    #[arg(long = "if-exists")]
    pub if_exists: bool,
    /// With --list or --describe: leave out internal topics.
    #[arg(long = "exclude-internal")]
    pub exclude_internal: bool,
}

pub fn run(args: TopicsArgs) -> anyhow::Result<()> {
    if !args.config.is_empty() && !args.create {
        bail!("Option --config is only valid with --create");
    }
    if args.partitions.is_some() && !(args.create || args.alter) {
        bail!("Option --partitions is only valid with --create or --alter");
    }
    if args.replication_factor.is_some() && !args.create {
        bail!("Option --replication-factor is only valid with --create");
    }
    let admin = args.conn.admin()?;
    block_on(async move {
        let r = if args.create {
            create(&admin, &args).await
        } else if args.list {
            list(&admin, &args).await
        } else if args.describe {
            describe(&admin, &args).await
        } else if args.alter {
            alter(&admin, &args).await
        } else {
            delete(&admin, &args).await
        };
        admin.close().await;
        r
    })
}

fn required_topic(args: &TopicsArgs, action: &str) -> anyhow::Result<String> {
    args.topic
        .clone()
        .ok_or_else(|| anyhow!("Missing required argument \"[topic]\" for {action}"))
}

async fn create(admin: &Admin, args: &TopicsArgs) -> anyhow::Result<()> {
    let name = required_topic(args, "--create")?;
    if let Some(rf) = args.replication_factor {
        if !(1..=i32::from(i16::MAX)).contains(&rf) {
            bail!(
                "The replication factor must be between 1 and {} inclusive",
                i16::MAX
            );
        }
    }
    if args.partitions.is_some_and(|p| p < 1) {
        bail!("The partitions must be greater than 0");
    }
    let mut topic = NewTopic {
        name: name.clone(),
        num_partitions: args.partitions,
        replication_factor: args.replication_factor.and_then(|r| i16::try_from(r).ok()),
        ..Default::default()
    };
    for (k, v) in parse_kv(&args.config, "--config")? {
        topic.configs.insert(k, v);
    }
    if name.contains('.') || name.contains('_') {
        println!(
            "WARNING: Due to limitations in metric names, topics with a period ('.') or underscore ('_') could collide. To avoid issues it is best to use either, but not both."
        );
    }
    match admin.create_topic(topic).await {
        Ok(_) => {
            println!("Created topic {name}.");
            Ok(())
        }
        // TOPIC_ALREADY_EXISTS
        Err(e) if e.code() == Some(36) && args.if_not_exists => Ok(()),
        Err(e) if e.code() == Some(36) => bail!("Topic '{name}' already exists."),
        Err(e) => Err(client_err(e)),
    }
}

/// The topics the command applies to: all (filtered) or the one named.
async fn selected_topics(admin: &Admin, args: &TopicsArgs) -> anyhow::Result<Vec<String>> {
    let all = admin
        .list_topics(!args.exclude_internal)
        .await
        .map_err(client_err)?;
    let names: Vec<String> = all
        .into_iter()
        .map(|t| t.name)
        .filter(|n| args.topic.is_none() || args.topic.as_ref() == Some(n))
        .collect();
    if let Some(t) = &args.topic {
        if names.is_empty() && !args.if_exists {
            bail!("Topic '{t}' does not exist");
        }
    }
    Ok(names)
}

async fn list(admin: &Admin, args: &TopicsArgs) -> anyhow::Result<()> {
    for name in selected_topics(admin, args).await? {
        println!("{name}");
    }
    Ok(())
}

async fn describe(admin: &Admin, args: &TopicsArgs) -> anyhow::Result<()> {
    let names = selected_topics(admin, args).await?;
    if names.is_empty() {
        return Ok(());
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let topics = admin.describe_topics(&refs).await.map_err(client_err)?;
    let resources: Vec<ConfigResource> = names
        .iter()
        .map(|n| ConfigResource::Topic(n.clone()))
        .collect();
    let configs = admin
        .describe_configs(&resources)
        .await
        .map_err(client_err)?;
    let mut out = String::new();
    for t in topics {
        let entries = configs
            .get(&ConfigResource::Topic(t.name.clone()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        out.push_str(&describe_topic(&t, entries));
    }
    print!("{out}");
    Ok(())
}

/// Kafka's `--describe` lines for one topic.
fn describe_topic(t: &gregor_client::cluster::TopicMetadata, configs: &[ConfigEntry]) -> String {
    let mut partitions = t.partitions.clone();
    partitions.sort_by_key(|p| p.partition);
    let rf = partitions.first().map_or(0, |p| p.replicas.len());
    let non_default: Vec<String> = configs
        .iter()
        .filter(|c| c.source != ConfigSource::Default)
        .map(|c| format!("{}={}", c.name, c.value.as_deref().unwrap_or("null")))
        .collect();
    let mut s = format!("Topic: {}", t.name);
    if !t.topic_id.is_nil() {
        s.push_str(&format!("\tTopicId: {}", topic_id_string(&t.topic_id)));
    }
    s.push_str(&format!(
        "\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}\n",
        partitions.len(),
        rf,
        non_default.join(",")
    ));
    let join = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    for p in &partitions {
        let leader = if p.leader >= 0 {
            p.leader.to_string()
        } else {
            "none".to_string()
        };
        s.push_str(&format!(
            "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}\tElr: N/A\tLastKnownElr: N/A\n",
            t.name,
            p.partition,
            leader,
            join(&p.replicas),
            join(&p.isr)
        ));
    }
    s
}

async fn alter(admin: &Admin, args: &TopicsArgs) -> anyhow::Result<()> {
    let name = required_topic(args, "--alter")?;
    let Some(count) = args.partitions else {
        bail!("--alter needs --partitions (only the partition count can be altered; use `gregor configs` for configs)");
    };
    let names = selected_topics(admin, args).await?;
    if names.is_empty() {
        return Ok(());
    }
    let r = admin
        .create_partitions(&[(name.as_str(), count)], false)
        .await
        .map_err(client_err)?;
    for (_, res) in r {
        res.map_err(client_err)?;
    }
    Ok(())
}

async fn delete(admin: &Admin, args: &TopicsArgs) -> anyhow::Result<()> {
    required_topic(args, "--delete")?;
    let names = selected_topics(admin, args).await?;
    if names.is_empty() {
        return Ok(());
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let results = admin.delete_topics(&refs).await.map_err(client_err)?;
    let mut failed = BTreeMap::new();
    for (name, res) in results {
        if let Err(e) = res {
            failed.insert(name, super::one_line(&client_err(e)));
        }
    }
    if let Some((name, e)) = failed.into_iter().next() {
        bail!("Deleting topic '{name}' failed: {e}");
    }
    Ok(())
}
