//! `gregor consumer-groups`: kafka-consumer-groups.sh (list, describe,
//! reset offsets, delete groups, delete offsets).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, bail};
use clap::{ArgGroup, Args};
use gregor_client::admin::{GroupDescription, OffsetResetSpec};
use gregor_client::{Admin, OffsetAndMetadata, TopicPartition};

use super::{block_on, client_err, parse_datetime, Conn};

pub const EXAMPLES: &str = "Examples:
  gregor consumer-groups --bootstrap-server 127.0.0.1:9092 --list
  gregor consumer-groups --list --state stable,empty
  gregor consumer-groups --describe --group billing
  gregor consumer-groups --describe --group billing --members --verbose
  gregor consumer-groups --describe --group billing --state
  gregor consumer-groups --reset-offsets --group billing --topic orders --to-earliest            (dry run)
  gregor consumer-groups --reset-offsets --group billing --all-topics --shift-by -10 --execute
  gregor consumer-groups --reset-offsets --group billing --topic orders:0,1 --to-datetime 2024-01-01T00:00:00.000 --execute
  gregor consumer-groups --delete-offsets --group billing --topic orders
  gregor consumer-groups --delete --group billing";

const MISSING: &str = "-";

/// List, describe and delete consumer groups; reset and delete their offsets.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("action").required(true)
    .args(["list", "describe", "reset_offsets", "delete", "delete_offsets"])))]
#[command(group(ArgGroup::new("scenario")
    .args(["to_earliest", "to_latest", "to_current", "to_offset", "shift_by", "to_datetime"])))]
pub struct ConsumerGroupsArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// List all consumer groups.
    #[arg(long)]
    pub list: bool,
    /// Describe consumer groups: their offsets and lag (default), --members or --state.
    #[arg(long)]
    pub describe: bool,
    /// Reset the committed offsets of an inactive group (a dry run unless --execute).
    #[arg(long = "reset-offsets")]
    pub reset_offsets: bool,
    /// Delete consumer groups (they must have no active members).
    #[arg(long)]
    pub delete: bool,
    /// Delete a group's committed offsets for topics (or topic:partitions).
    #[arg(long = "delete-offsets")]
    pub delete_offsets: bool,
    /// The consumer group (repeatable for --describe, --delete, --reset-offsets).
    #[arg(long, value_name = "GROUP")]
    pub group: Vec<String>,
    /// Apply to every group (--describe, --delete, --reset-offsets).
    #[arg(long = "all-groups")]
    pub all_groups: bool,
    /// A topic, or topic:0,1,2 for some partitions (repeatable).
    #[arg(long, value_name = "TOPIC[:PARTITIONS]")]
    pub topic: Vec<String>,
    /// With --reset-offsets: every topic the group has offsets for.
    #[arg(long = "all-topics")]
    pub all_topics: bool,
    /// With --describe: the members of the group.
    #[arg(long)]
    pub members: bool,
    /// With --describe: the group's offsets and lag (the default).
    #[arg(long)]
    pub offsets: bool,
    /// With --describe: the group's state. With --list: show states, and
    /// only groups in these states ("stable,empty"; all if no value).
    #[arg(long, value_name = "STATES", num_args = 0..=1, default_missing_value = "")]
    pub state: Option<String>,
    /// With --describe --members: each member's assignment.
    #[arg(long)]
    pub verbose: bool,
    /// Reset to the earliest offset.
    #[arg(long = "to-earliest")]
    pub to_earliest: bool,
    /// Reset to the latest offset.
    #[arg(long = "to-latest")]
    pub to_latest: bool,
    /// Reset to the committed offset (no change).
    #[arg(long = "to-current")]
    pub to_current: bool,
    /// Reset to this offset (clamped to the partition's range).
    #[arg(long = "to-offset", value_name = "N", allow_hyphen_values = true)]
    pub to_offset: Option<i64>,
    /// Shift the committed offsets by N (may be negative).
    #[arg(long = "shift-by", value_name = "N", allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// Reset to the first offset at or after this time: YYYY-MM-DDTHH:mm:SS.sss[Z|±HH:mm].
    #[arg(long = "to-datetime", value_name = "DATETIME")]
    pub to_datetime: Option<String>,
    /// Apply the reset.
    #[arg(long)]
    pub execute: bool,
    /// Only show the new offsets (the default).
    #[arg(long = "dry-run")]
    pub dry_run: bool,
}

pub fn run(args: ConsumerGroupsArgs) -> anyhow::Result<()> {
    let needs_group = args.describe || args.reset_offsets || args.delete;
    if needs_group && args.group.is_empty() && !args.all_groups {
        bail!("Option --group or --all-groups is required");
    }
    if args.delete_offsets && args.group.len() != 1 {
        bail!("Option --delete-offsets takes exactly one --group");
    }
    if args.delete_offsets && args.topic.is_empty() {
        bail!("Option --delete-offsets needs --topic");
    }
    if args.reset_offsets {
        if args.execute && args.dry_run {
            bail!("Option --execute and --dry-run cannot be used together");
        }
        if args.topic.is_empty() != args.all_topics {
            bail!("One of the reset scopes should be defined: --all-topics, --topic.");
        }
    }
    let admin = args.conn.admin()?;
    block_on(async move {
        let r = if args.list {
            list(&admin, &args).await
        } else if args.describe {
            describe(&admin, &args).await
        } else if args.reset_offsets {
            reset(&admin, &args).await
        } else if args.delete {
            delete(&admin, &args).await
        } else {
            delete_offsets(&admin, &args).await
        };
        admin.close().await;
        r
    })
}

/// Consumer groups: protocol type "consumer", or "" for groups that only have offsets.
async fn consumer_groups(admin: &Admin) -> anyhow::Result<Vec<gregor_client::admin::GroupListing>> {
    Ok(admin
        .list_groups()
        .await
        .map_err(client_err)?
        .into_iter()
        .filter(|g| g.protocol_type.is_empty() || g.protocol_type == "consumer")
        .collect())
}

async fn group_ids(admin: &Admin, args: &ConsumerGroupsArgs) -> anyhow::Result<Vec<String>> {
    if args.all_groups {
        Ok(consumer_groups(admin)
            .await?
            .into_iter()
            .map(|g| g.group_id)
            .collect())
    } else {
        Ok(args.group.clone())
    }
}

async fn list(admin: &Admin, args: &ConsumerGroupsArgs) -> anyhow::Result<()> {
    let groups = consumer_groups(admin).await?;
    let Some(states) = &args.state else {
        for g in groups {
            println!("{}", g.group_id);
        }
        return Ok(());
    };
    let wanted: Vec<String> = states
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    const VALID: [&str; 5] = [
        "preparingrebalance",
        "completingrebalance",
        "stable",
        "dead",
        "empty",
    ];
    if let Some(bad) = wanted.iter().find(|w| !VALID.contains(&w.as_str())) {
        bail!("Invalid state list '{states}' ('{bad}'). Valid states are: PreparingRebalance, CompletingRebalance, Stable, Dead, Empty");
    }
    let groups: Vec<_> = groups
        .into_iter()
        .filter(|g| wanted.is_empty() || wanted.contains(&g.state.to_ascii_lowercase()))
        .collect();
    let width = groups
        .iter()
        .map(|g| g.group_id.len().max(15))
        .max()
        .unwrap_or(15)
        + 10;
    let mut out = format!("{:<width$} {:<20}\n", "GROUP", "STATE");
    for g in groups {
        let state = if g.state.is_empty() {
            "Unknown"
        } else {
            &g.state
        };
        out.push_str(&format!("{:<width$} {:<20}\n", g.group_id, state));
    }
    print!("{out}");
    Ok(())
}

async fn describe_one(admin: &Admin, group: &str) -> anyhow::Result<GroupDescription> {
    let d = admin
        .describe_groups(&[group])
        .await
        .map_err(|e| match e.code() {
            Some(69) => anyhow!("Consumer group '{group}' does not exist."),
            _ => client_err(e),
        })?
        .pop()
        .ok_or_else(|| anyhow!("DescribeGroups returned nothing for '{group}'"))?;
    if d.state == "Dead" {
        bail!("Consumer group '{group}' does not exist.");
    }
    if !d.protocol_type.is_empty() && d.protocol_type != "consumer" {
        bail!(
            "Group '{group}' is not a consumer group (protocol type '{}').",
            d.protocol_type
        );
    }
    Ok(d)
}

/// Says on stderr what Kafka says about empty and rebalancing groups.
fn state_note(group: &str, state: &str) {
    match state {
        "Empty" => eprintln!("\nConsumer group '{group}' has no active members."),
        "PreparingRebalance" | "CompletingRebalance" => {
            eprintln!("\nWarning: Consumer group '{group}' is rebalancing.")
        }
        _ => {}
    }
}

async fn describe(admin: &Admin, args: &ConsumerGroupsArgs) -> anyhow::Result<()> {
    let picked = [args.members, args.offsets, args.state.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if picked > 1 {
        bail!("Option --describe takes only one of these options: --members, --offsets, --state");
    }
    let mut out = String::new();
    for group in group_ids(admin, args).await? {
        let d = describe_one(admin, &group).await?;
        if args.members {
            state_note(&group, &d.state);
            out.push_str(&members_table(&d, args.verbose));
        } else if args.state.is_some() {
            out.push_str(&state_table(admin, &d).await?);
        } else {
            state_note(&group, &d.state);
            out.push_str(&offsets_table(admin, &d).await?);
        }
    }
    print!("{out}");
    Ok(())
}

async fn offsets_table(admin: &Admin, d: &GroupDescription) -> anyhow::Result<String> {
    let rows = admin.describe_group_lag(d).await.map_err(client_err)?;
    if rows.is_empty() {
        // Kafka prints nothing more for a group without partitions.
        return Ok(String::new());
    }
    let gw = d.group_id.len().max(15);
    let tw = rows
        .iter()
        .map(|r| r.partition.topic.len())
        .max()
        .unwrap_or(0)
        .max(15);
    let or_missing = |s: &Option<String>| s.clone().unwrap_or_else(|| MISSING.to_string());
    let cw = rows
        .iter()
        .map(|r| or_missing(&r.member_id).len())
        .max()
        .unwrap_or(0)
        .max(15);
    let hw = rows
        .iter()
        .map(|r| or_missing(&r.client_host).len())
        .max()
        .unwrap_or(0)
        .max(15);
    let line = |cols: [&str; 9]| {
        format!(
            "{:<gw$} {:<tw$} {:<10} {:<15} {:<15} {:<15} {:<cw$} {:<hw$} {}\n",
            cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8]
        )
    };
    let mut out = String::from("\n");
    out.push_str(&line([
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]));
    let opt = |v: Option<i64>| v.map_or(MISSING.to_string(), |v| v.to_string());
    for r in &rows {
        out.push_str(&line([
            &d.group_id,
            &r.partition.topic,
            &r.partition.partition.to_string(),
            &opt(r.current_offset),
            &opt(r.log_end_offset),
            &opt(r.lag),
            &or_missing(&r.member_id),
            &or_missing(&r.client_host),
            &or_missing(&r.client_id),
        ]));
    }
    Ok(out)
}

/// `topic:0,1;other:2`, Kafka's assignment string.
fn assignment_string(tps: &[TopicPartition]) -> String {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in tps {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    by_topic
        .into_iter()
        .map(|(t, mut ps)| {
            ps.sort_unstable();
            let ps: Vec<String> = ps.iter().map(i32::to_string).collect();
            format!("{t}:{}", ps.join(","))
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn members_table(d: &GroupDescription, verbose: bool) -> String {
    let gw = d.group_id.len().max(15);
    let cw = d
        .members
        .iter()
        .map(|m| m.member_id.len())
        .max()
        .unwrap_or(0)
        .max(15);
    let hw = d
        .members
        .iter()
        .map(|m| m.client_host.len())
        .max()
        .unwrap_or(0)
        .max(15);
    let clw = d
        .members
        .iter()
        .map(|m| m.client_id.len())
        .max()
        .unwrap_or(0)
        .max(15);
    let with_instance = d.members.iter().any(|m| m.group_instance_id.is_some());
    let iw = d
        .members
        .iter()
        .map(|m| m.group_instance_id.as_deref().unwrap_or("").len())
        .max()
        .unwrap_or(0)
        .max(17);
    let assignments: Vec<String> = d
        .members
        .iter()
        .map(|m| {
            if m.assignment.is_empty() {
                MISSING.to_string()
            } else {
                assignment_string(&m.assignment)
            }
        })
        .collect();
    let aw = assignments
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(0)
        .max(20);
    let row = |g: &str, c: &str, i: &str, h: &str, cl: &str, n: &str| {
        if with_instance {
            format!("{g:<gw$} {c:<cw$} {i:<iw$} {h:<hw$} {cl:<clw$} {n:<15} ")
        } else {
            format!("{g:<gw$} {c:<cw$} {h:<hw$} {cl:<clw$} {n:<15} ")
        }
    };
    let mut out = String::from("\n");
    out.push_str(&row(
        "GROUP",
        "CONSUMER-ID",
        "GROUP-INSTANCE-ID",
        "HOST",
        "CLIENT-ID",
        "#PARTITIONS",
    ));
    if verbose {
        out.push_str(&format!(
            "{:<15} {:<aw$} {:<15} {:<20}",
            "CURRENT-EPOCH", "CURRENT-ASSIGNMENT", "TARGET-EPOCH", "TARGET-ASSIGNMENT"
        ));
    }
    out.push('\n');
    for (m, a) in d.members.iter().zip(&assignments) {
        out.push_str(&row(
            &d.group_id,
            &m.member_id,
            m.group_instance_id.as_deref().unwrap_or(""),
            &m.client_host,
            &m.client_id,
            &m.assignment.len().to_string(),
        ));
        if verbose {
            out.push_str(&format!(
                "{:<15} {:<aw$} {:<15} {:<20}",
                MISSING, a, MISSING, MISSING
            ));
        }
        out.push('\n');
    }
    out
}

async fn state_table(admin: &Admin, d: &GroupDescription) -> anyhow::Result<String> {
    let cluster = admin.describe_cluster().await.map_err(client_err)?;
    let coordinator = cluster
        .brokers
        .iter()
        .find(|b| b.node_id == d.coordinator)
        .map(|b| format!("{}:{}  ({})", b.host, b.port, b.node_id))
        .unwrap_or_else(|| format!("-  ({})", d.coordinator));
    let cw = coordinator.len().max(25);
    let gw = d.group_id.len().max(15);
    let strategy = if d.protocol.is_empty() {
        MISSING
    } else {
        &d.protocol
    };
    let mut out = String::from("\n");
    out.push_str(&format!(
        "{:<gw$} {:<cw$} {:<20} {:<20} {}\n",
        "GROUP", "COORDINATOR (ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"
    ));
    out.push_str(&format!(
        "{:<gw$} {:<cw$} {:<20} {:<20} {}\n",
        d.group_id,
        coordinator,
        strategy,
        d.state,
        d.members.len()
    ));
    Ok(out)
}

/// `--topic` values: whole topics, or `topic:0,1`.
async fn partitions_of(admin: &Admin, topics: &[String]) -> anyhow::Result<Vec<TopicPartition>> {
    let mut out = BTreeSet::new();
    let mut whole = Vec::new();
    for t in topics {
        match t.split_once(':') {
            Some((name, ps)) => {
                for p in ps.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let p: i32 = p
                        .parse()
                        .map_err(|_| anyhow!("Invalid partition '{p}' in --topic {t}"))?;
                    out.insert(TopicPartition::new(name, p));
                }
            }
            None => whole.push(t.as_str()),
        }
    }
    if !whole.is_empty() {
        let existing: BTreeSet<String> = admin
            .list_topics(true)
            .await
            .map_err(client_err)?
            .into_iter()
            .map(|t| t.name)
            .collect();
        if let Some(missing) = whole.iter().find(|t| !existing.contains(**t)) {
            bail!("Topic '{missing}' does not exist");
        }
        for t in admin.describe_topics(&whole).await.map_err(client_err)? {
            for p in t.partitions {
                out.insert(TopicPartition::new(t.name.clone(), p.partition));
            }
        }
    }
    Ok(out.into_iter().collect())
}

async fn reset(admin: &Admin, args: &ConsumerGroupsArgs) -> anyhow::Result<()> {
    let datetime = match &args.to_datetime {
        Some(s) => Some(parse_datetime(s)?),
        None => None,
    };
    let spec = if args.to_earliest {
        OffsetResetSpec::Earliest
    } else if args.to_latest {
        OffsetResetSpec::Latest
    } else if let Some(o) = args.to_offset {
        OffsetResetSpec::Offset(o)
    } else if let Some(n) = args.shift_by {
        OffsetResetSpec::ShiftBy(n)
    } else if let Some(ts) = datetime {
        OffsetResetSpec::Timestamp(ts)
    } else if args.to_current {
        OffsetResetSpec::Current
    } else {
        bail!("Option --reset-offsets needs one of --to-earliest, --to-latest, --to-current, --to-offset, --shift-by, --to-datetime");
    };
    let execute = args.execute && !args.dry_run;
    let mut plans: BTreeMap<String, BTreeMap<TopicPartition, i64>> = BTreeMap::new();
    for group in group_ids(admin, args).await? {
        let partitions = if args.all_topics {
            None
        } else {
            Some(partitions_of(admin, &args.topic).await?)
        };
        let plan = admin
            .plan_group_offset_reset(&group, partitions.as_deref(), spec)
            .await
            .map_err(client_err)?;
        if execute && !plan.is_empty() {
            let offsets: BTreeMap<TopicPartition, OffsetAndMetadata> = plan
                .iter()
                .map(|(tp, o)| (tp.clone(), OffsetAndMetadata::new(*o)))
                .collect();
            admin
                .alter_group_offsets(&group, &offsets)
                .await
                .map_err(client_err)?;
        }
        plans.insert(group, plan);
    }
    let line = |g: &str, t: &str, p: &str, o: &str| format!("\n{g:<30} {t:<30} {p:<10} {o:<15}");
    let mut out = String::new();
    if !plans.is_empty() {
        out.push_str(&line("GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"));
    }
    for (g, plan) in &plans {
        for (tp, o) in plan {
            out.push_str(&line(
                g,
                &tp.topic,
                &tp.partition.to_string(),
                &o.to_string(),
            ));
        }
    }
    out.push('\n');
    print!("{out}");
    Ok(())
}

async fn delete(admin: &Admin, args: &ConsumerGroupsArgs) -> anyhow::Result<()> {
    let groups = group_ids(admin, args).await?;
    let refs: Vec<&str> = groups.iter().map(String::as_str).collect();
    let results = admin.delete_groups(&refs).await.map_err(client_err)?;
    let mut failed = Vec::new();
    for (g, r) in &results {
        if let Err(e) = r {
            let reason = match e.code() {
                Some(68) => "The group is not empty.".to_string(),
                Some(69) => "The group id does not exist.".to_string(),
                _ => super::one_line(&client_err(e.clone())),
            };
            failed.push(format!("Group '{g}' could not be deleted due to: {reason}"));
        }
    }
    if !failed.is_empty() {
        bail!(
            "Deletion of some consumer groups failed: {}",
            failed.join("; ")
        );
    }
    let quoted: Vec<String> = groups.iter().map(|g| format!("'{g}'")).collect();
    println!(
        "Deletion of requested consumer groups ({}) was successful.",
        quoted.join(", ")
    );
    Ok(())
}

async fn delete_offsets(admin: &Admin, args: &ConsumerGroupsArgs) -> anyhow::Result<()> {
    let group = &args.group[0];
    let partitions = partitions_of(admin, &args.topic).await?;
    admin
        .delete_group_offsets(group, &partitions)
        .await
        .map_err(|e| match e.code() {
            Some(68) => anyhow!("The group is not empty."),
            Some(69) => anyhow!("The group id does not exist."),
            Some(86) => anyhow!("The group is actively subscribed to the topic."),
            _ => client_err(e),
        })?;
    let tw = partitions
        .iter()
        .map(|tp| tp.topic.len())
        .max()
        .unwrap_or(0)
        .max(15);
    let mut out = format!("Request succeeded for deleting offsets from group {group}.\n");
    out.push_str(&format!(
        "\n{:<tw$} {:<10} {:<15}",
        "TOPIC", "PARTITION", "STATUS"
    ));
    for tp in &partitions {
        out.push_str(&format!(
            "\n{:<tw$} {:<10} {:<15}",
            tp.topic, tp.partition, "Successful"
        ));
    }
    out.push('\n');
    print!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_strings() {
        let tps = vec![
            TopicPartition::new("b", 2),
            TopicPartition::new("a", 1),
            TopicPartition::new("a", 0),
        ];
        assert_eq!(assignment_string(&tps), "a:0,1;b:2");
    }
}
