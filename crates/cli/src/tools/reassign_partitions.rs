//! `gregor reassign-partitions`: kafka-reassign-partitions.sh (`--generate`,
//! `--execute`, `--verify`, `--cancel`, `--list`), with Kafka's JSON and
//! messages (ReassignPartitionsCommand), including `log_dirs` (a replica's
//! log directory on its broker, moved with AlterReplicaLogDirs). Throttles
//! are not offered.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use gregor_client::admin::{AlterConfigOp, ConfigResource};
use gregor_client::Admin;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::Value;

use super::{block_on, client_err, Conn};

pub const EXAMPLES: &str = "Examples:
  gregor reassign-partitions --bootstrap-server 127.0.0.1:9092 --generate \\
      --topics-to-move-json-file topics.json --broker-list 1
    (topics.json: {\"version\": 1, \"topics\": [{\"topic\": \"orders\"}]})
  gregor reassign-partitions --execute --reassignment-json-file plan.json
  gregor reassign-partitions --verify --reassignment-json-file plan.json
  gregor reassign-partitions --list";

/// Move partitions' replicas between brokers.
#[derive(Args, Debug)]
pub struct ReassignArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Propose a reassignment of the topics in --topics-to-move-json-file to --broker-list.
    #[arg(long)]
    pub generate: bool,
    /// Start the reassignment in --reassignment-json-file.
    #[arg(long)]
    pub execute: bool,
    /// Check the reassignment in --reassignment-json-file, then clear throttles.
    #[arg(long)]
    pub verify: bool,
    /// Cancel the reassignments in --reassignment-json-file.
    #[arg(long)]
    pub cancel: bool,
    /// List the reassignments in progress.
    #[arg(long)]
    pub list: bool,
    /// The reassignment: {"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1]}]}.
    #[arg(long = "reassignment-json-file", value_name = "FILE")]
    pub reassignment_json_file: Option<PathBuf>,
    /// The topics to move: {"version":1,"topics":[{"topic":"t"}]}.
    #[arg(long = "topics-to-move-json-file", value_name = "FILE")]
    pub topics_to_move_json_file: Option<PathBuf>,
    /// The brokers to move the topics to: "1,2".
    #[arg(long = "broker-list", value_name = "IDS")]
    pub broker_list: Option<String>,
    /// --generate: ignore racks.
    #[arg(long = "disable-rack-aware")]
    pub disable_rack_aware: bool,
    /// --verify / --cancel: leave throttles in place.
    #[arg(long = "preserve-throttles")]
    pub preserve_throttles: bool,
    /// --execute: run even if other reassignments are in progress.
    #[arg(long)]
    pub additional: bool,
    /// --execute: how long (ms) to keep asking for the log directory moves
    /// in `log_dirs` to start (a replica a reassignment adds exists only
    /// once the reassignment reaches its broker).
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub timeout: u64,
}

/// A replica's target log directory (`log_dirs` other than "any"): Kafka's
/// `TopicPartitionReplica` and its `toString` (`topic-partition-broker`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Replica(Tp, i32);

impl std::fmt::Display for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// A reassignment JSON: the replicas of each partition, and the log
/// directories asked for some of them.
struct Plan {
    parts: Vec<(Tp, Vec<i32>)>,
    dirs: BTreeMap<Replica, String>,
}

/// A partition as Kafka's `TopicPartition.toString` prints it, ordered as
/// Kafka's `compareTopicPartitions` (topic, then partition).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Tp(String, i32);

impl std::fmt::Display for Tp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

const BROKER_THROTTLES: [&str; 3] = [
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
    "replica.alter.log.dirs.io.max.bytes.per.second",
];
const TOPIC_THROTTLES: [&str; 2] = [
    "leader.replication.throttled.replicas",
    "follower.replication.throttled.replicas",
];

pub fn run(args: ReassignArgs) -> anyhow::Result<()> {
    let actions = [
        args.generate,
        args.execute,
        args.verify,
        args.cancel,
        args.list,
    ];
    if actions.iter().filter(|a| **a).count() != 1 {
        bail!("Command must include exactly one action: --generate, --execute, --verify, --cancel, --list");
    }
    let need = |v: &Option<PathBuf>, name: &str| -> anyhow::Result<String> {
        let path = v
            .as_ref()
            .ok_or_else(|| anyhow!("Missing required argument \"[{name}]\""))?;
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let config = args.conn.client_config(&[])?;
    let admin = args.conn.admin()?;
    let raw = Raw {
        config: config.clone(),
    };
    if args.generate {
        let topics_json = need(&args.topics_to_move_json_file, "topics-to-move-json-file")?;
        let brokers = args
            .broker_list
            .clone()
            .ok_or_else(|| anyhow!("Missing required argument \"[broker-list]\""))?;
        return block_on(async move {
            let r = generate(&admin, &topics_json, &brokers).await;
            admin.close().await;
            r
        });
    }
    if args.list {
        return block_on(async move {
            let current = raw.list(None).await?;
            admin.close().await;
            print_current(&current);
            Ok(())
        });
    }
    let plan = parse_plan(&need(
        &args.reassignment_json_file,
        "reassignment-json-file",
    )?)?;
    block_on(async move {
        let r = if args.execute {
            match execute(&admin, &raw, &plan.parts, args.additional).await {
                Ok(()) if !plan.dirs.is_empty() => {
                    execute_moves(&admin, &plan.dirs, args.timeout).await
                }
                r => r,
            }
        } else if args.verify {
            verify(&admin, &raw, &plan, args.preserve_throttles).await
        } else {
            cancel(&admin, &raw, &plan.parts, args.preserve_throttles).await
        };
        admin.close().await;
        r
    })
}

/// Kafka's `formatAsReassignmentJson` (Jackson's compact output, keys in
/// this order, partitions sorted).
fn reassignment_json(parts: &BTreeMap<Tp, Vec<i32>>) -> String {
    let items: Vec<String> = parts
        .iter()
        .map(|(tp, replicas)| {
            let r: Vec<String> = replicas.iter().map(i32::to_string).collect();
            let dirs: Vec<&str> = replicas.iter().map(|_| "\"any\"").collect();
            format!(
                "{{\"topic\":{},\"partition\":{},\"replicas\":[{}],\"log_dirs\":[{}]}}",
                Value::String(tp.0.clone()),
                tp.1,
                r.join(","),
                dirs.join(",")
            )
        })
        .collect();
    format!("{{\"version\":1,\"partitions\":[{}]}}", items.join(","))
}

fn json(text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).map_err(|_| anyhow!("The input string is not a valid JSON"))
}

fn version_of(js: &Value) -> anyhow::Result<()> {
    match js.get("version").map(Value::as_i64) {
        None | Some(Some(1)) => Ok(()),
        Some(v) => bail!(
            "Not supported version field value {}",
            v.map_or("?".to_string(), |v| v.to_string())
        ),
    }
}

/// The target of every partition of a reassignment JSON, in file order, and
/// the log directories asked for.
fn parse_plan(text: &str) -> anyhow::Result<Plan> {
    let js = json(text)?;
    version_of(&js)?;
    let mut out = Vec::new();
    let mut dirs_out = BTreeMap::new();
    for p in js
        .get("partitions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let topic = p
            .get("topic")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("No such field exists: `topic`"))?;
        let partition = p
            .get("partition")
            .and_then(Value::as_i64)
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(|| anyhow!("No such field exists: `partition`"))?;
        let replicas: Vec<i32> = p
            .get("replicas")
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow!("No such field exists: `replicas`"))?
            .iter()
            .map(|r| r.as_i64().and_then(|v| i32::try_from(v).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| anyhow!("Expected int values in `replicas`"))?;
        let tp = Tp(topic.to_string(), partition);
        if let Some(dirs) = p.get("log_dirs") {
            let dirs: Vec<&str> = dirs
                .as_array()
                .map(|d| d.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if dirs.len() != replicas.len() {
                bail!(
                    "Size of replicas list [{}] is different from size of log dirs list [{}] for partition {tp}",
                    replicas.iter().map(i32::to_string).collect::<Vec<_>>().join(", "),
                    dirs.join(", ")
                );
            }
            for (broker, dir) in replicas.iter().zip(dirs) {
                if dir != "any" {
                    dirs_out.insert(Replica(tp.clone(), *broker), dir.to_string());
                }
            }
        }
        out.push((tp, replicas));
    }
    Ok(Plan {
        parts: out,
        dirs: dirs_out,
    })
}

/// Kafka's `executeMoves`: asks each broker to move its replicas to the
/// log directories of `dirs`, again every 100 ms for those it does not host
/// yet (REPLICA_NOT_AVAILABLE), for at most `timeout_ms`.
async fn execute_moves(
    admin: &Admin,
    dirs: &BTreeMap<Replica, String>,
    timeout_ms: u64,
) -> anyhow::Result<()> {
    const REPLICA_NOT_AVAILABLE: i16 = 9;
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms);
    let mut pending = dirs.clone();
    loop {
        let mut by_broker: BTreeMap<i32, Vec<(gregor_client::TopicPartition, String)>> =
            BTreeMap::new();
        for (Replica(tp, broker), dir) in &pending {
            by_broker.entry(*broker).or_default().push((
                gregor_client::TopicPartition::new(tp.0.clone(), tp.1),
                dir.clone(),
            ));
        }
        let mut started = Vec::new();
        for (broker, moves) in by_broker {
            let outcome = admin
                .alter_replica_log_dirs(broker, &moves)
                .await
                .map_err(client_err)?;
            for (tp, code) in outcome {
                let replica = Replica(Tp(tp.topic.clone(), tp.partition), broker);
                match code {
                    0 => started.push(replica),
                    REPLICA_NOT_AVAILABLE => {}
                    code => {
                        let why = gregor_client::Error::from_code(code, None)
                            .map_or_else(|| format!("error code {code}"), |e| e.to_string());
                        let dir = &dirs[&replica];
                        bail!("Moving replica {replica} to log directory {dir} failed: {why}");
                    }
                }
            }
        }
        started.sort();
        for replica in started {
            if let Some(dir) = pending.remove(&replica) {
                println!(
                    "Successfully started moving log directory to {dir} for replica {}-{} with broker {} ",
                    replica.0 .0, replica.0 .1, replica.1
                );
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            bail!(
                "Timed out before log directory move{} could be started for: {}",
                if pending.len() == 1 { "" } else { "s" },
                join(&pending.keys().collect::<Vec<_>>(), ",")
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Kafka's `findLogDirMoveStates` and `replicaMoveStatesToString`: one line
/// per replica with a log directory in the plan.
async fn log_dir_move_states(
    admin: &Admin,
    dirs: &BTreeMap<Replica, String>,
) -> anyhow::Result<(Vec<String>, bool)> {
    let brokers: Vec<i32> = dirs
        .keys()
        .map(|r| r.1)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let described = admin
        .describe_log_dirs(&brokers)
        .await
        .map_err(client_err)?;
    let mut lines = Vec::new();
    let mut done = true;
    for (replica, target) in dirs {
        let Replica(tp, broker) = replica;
        let mut current = None;
        let mut future = None;
        let mut listed = false;
        for d in described.iter().filter(|d| d.broker == *broker) {
            for r in d
                .replicas
                .iter()
                .filter(|r| r.partition.topic == tp.0 && r.partition.partition == tp.1)
            {
                listed = true;
                if r.is_future {
                    future = Some(d.path.clone());
                } else {
                    current = Some(d.path.clone());
                }
            }
        }
        let line = match (listed, current, future) {
            (false, _, _) => {
                done = false;
                format!(
                    "Partition {tp} cannot be found in any live log directory on broker {broker}."
                )
            }
            (true, None, _) => {
                done = false;
                format!("Partition {tp} is not found in any live log dir on broker {broker}. There is likely an offline log directory on the broker.")
            }
            (true, Some(cur), None) if &cur == target => {
                format!("Reassignment of replica {replica} completed successfully.")
            }
            (true, Some(cur), None) => {
                done = false;
                format!("Partition {tp} on broker {broker} is not being moved from log dir {cur} to {target}.")
            }
            (true, Some(_), Some(fut)) if &fut == target => {
                done = false;
                format!("Reassignment of replica {replica} is still in progress.")
            }
            (true, Some(_), Some(fut)) => {
                done = false;
                format!("Partition {tp} on broker {broker} is being moved to log dir {fut} instead of {target}.")
            }
        };
        lines.push(line);
    }
    Ok((lines, done))
}

/// The current replicas of a topic's partitions, or Kafka's "not found".
async fn replicas_of(
    admin: &Admin,
    topic: &str,
) -> anyhow::Result<Option<BTreeMap<i32, Vec<i32>>>> {
    match admin.describe_topics(&[topic]).await {
        Ok(ts) => Ok(ts.into_iter().next().map(|t| {
            t.partitions
                .into_iter()
                .map(|p| (p.partition, p.replicas))
                .collect()
        })),
        Err(gregor_client::Error::Kafka { code: 3, .. }) => Ok(None),
        Err(e) => Err(client_err(e)),
    }
}

async fn generate(admin: &Admin, topics_json: &str, brokers: &str) -> anyhow::Result<()> {
    let mut wanted = Vec::new();
    for b in brokers.split(',') {
        wanted.push(
            b.trim()
                .parse::<i32>()
                .map_err(|_| anyhow!("For input string: \"{b}\""))?,
        );
    }
    let dups = duplicates(&wanted);
    if !dups.is_empty() {
        bail!(
            "Broker list contains duplicate entries: [{}]",
            join(&dups, ", ")
        );
    }
    let js = json(topics_json)?;
    version_of(&js)?;
    let topics: Vec<String> = js
        .get("topics")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|t| {
            t.get("topic")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| anyhow!("No such field exists: `topic`"))
        })
        .collect::<anyhow::Result<_>>()?;
    let dups = duplicates(&topics);
    if !dups.is_empty() {
        bail!(
            "List of topics to reassign contains duplicate entries: [{}]",
            join(&dups, ", ")
        );
    }
    let mut current = BTreeMap::new();
    for t in &topics {
        let parts = replicas_of(admin, t)
            .await?
            .ok_or_else(|| anyhow!("Topic {t} not found."))?;
        for (p, r) in parts {
            current.insert(Tp(t.clone(), p), r);
        }
    }
    let cluster = super::broker_ids(admin).await?;
    let available: Vec<i32> = wanted
        .iter()
        .copied()
        .filter(|b| cluster.contains(b))
        .collect();
    let mut proposed = BTreeMap::new();
    for (tp, replicas) in &current {
        let rf = replicas.len();
        if rf > available.len() {
            bail!(
                "Replication factor: {rf} larger than available brokers: {}.",
                available.len()
            );
        }
        // Round robin from the partition's index (Kafka starts at a random
        // broker; with one broker every choice is the same).
        let n = available.len();
        let start = usize::try_from(tp.1).unwrap_or(0);
        proposed.insert(
            tp.clone(),
            (0..rf).map(|i| available[(start + i) % n]).collect(),
        );
    }
    println!(
        "Current partition replica assignment\n{}\n",
        reassignment_json(&current)
    );
    println!(
        "Proposed partition reassignment configuration\n{}",
        reassignment_json(&proposed)
    );
    Ok(())
}

async fn execute(
    admin: &Admin,
    raw: &Raw,
    plan: &[(Tp, Vec<i32>)],
    additional: bool,
) -> anyhow::Result<()> {
    if plan.is_empty() {
        bail!("Partition reassignment list cannot be empty");
    }
    if plan.iter().any(|(_, r)| r.is_empty()) {
        bail!("Partition replica list cannot be empty");
    }
    let tps: Vec<Tp> = plan.iter().map(|(tp, _)| tp.clone()).collect();
    let dups = duplicates(&tps);
    if !dups.is_empty() {
        bail!(
            "Partition reassignment contains duplicate topic partitions: {}",
            join(&dups, ",")
        );
    }
    let dup_replicas: Vec<String> = plan
        .iter()
        .filter_map(|(tp, r)| {
            let d = duplicates(r);
            (!d.is_empty()).then(|| format!("{tp} contains multiple entries for {}", join(&d, ",")))
        })
        .collect();
    if !dup_replicas.is_empty() {
        bail!(
            "Partition replica lists may not contain duplicate entries: {}",
            dup_replicas.join(". ")
        );
    }
    if !additional && !raw.list(None).await?.is_empty() {
        bail!("Cannot execute because there is an existing partition assignment.  Use --additional to override this and create a new partition assignment in addition to the existing one. The --additional flag can also be used to change the throttle by resubmitting the current reassignment.");
    }
    let cluster = super::broker_ids(admin).await?;
    if let Some(unknown) = plan
        .iter()
        .flat_map(|(_, r)| r.iter())
        .find(|b| !cluster.contains(b))
    {
        bail!("Unknown broker id {unknown}");
    }
    let mut current = BTreeMap::new();
    let mut missing = Vec::new();
    let topics: BTreeSet<&str> = plan.iter().map(|(tp, _)| tp.0.as_str()).collect();
    for t in topics {
        let Some(parts) = replicas_of(admin, t).await? else {
            bail!("Topic {t} not found.");
        };
        for (tp, _) in plan.iter().filter(|(tp, _)| tp.0 == t) {
            match parts.get(&tp.1) {
                Some(r) => {
                    current.insert(tp.clone(), r.clone());
                }
                None => missing.push(tp.to_string()),
            }
        }
    }
    if !missing.is_empty() {
        bail!("Unable to find partition: {}", missing.join(", "));
    }
    println!(
        "Current partition replica assignment\n\n{}\n\nSave this to use as the --reassignment-json-file option during rollback",
        reassignment_json(&current)
    );
    let targets: Vec<(Tp, Option<Vec<i32>>)> = plan
        .iter()
        .map(|(tp, r)| (tp.clone(), Some(r.clone())))
        .collect();
    let errors = raw.alter(&targets).await?;
    if !errors.is_empty() {
        let lines: Vec<String> = errors.iter().map(|(tp, m)| format!("{tp}: {m}")).collect();
        bail!("Error reassigning partition(s):\n{}", lines.join("\n"));
    }
    let names: BTreeSet<&Tp> = plan.iter().map(|(tp, _)| tp).collect();
    println!(
        "Successfully started partition reassignment{} for {}",
        if plan.len() == 1 { "" } else { "s" },
        join(&names.into_iter().collect::<Vec<_>>(), ",")
    );
    Ok(())
}

async fn verify(
    admin: &Admin,
    raw: &Raw,
    full: &Plan,
    preserve_throttles: bool,
) -> anyhow::Result<()> {
    let plan = &full.parts;
    let ongoing = raw.list(None).await?;
    let mut states: BTreeMap<Tp, String> = BTreeMap::new();
    for (tp, target) in plan {
        let line = if ongoing.contains_key(tp) {
            format!("Reassignment of partition {tp} is still in progress.")
        } else {
            let current = replicas_of(admin, &tp.0)
                .await?
                .and_then(|ps| ps.get(&tp.1).cloned())
                .unwrap_or_default();
            if &current == target {
                format!("Reassignment of partition {tp} is completed.")
            } else {
                format!(
                    "There is no active reassignment of partition {tp}, but replica set is {} rather than {}.",
                    join(&current, ","),
                    join(target, ",")
                )
            }
        };
        states.insert(tp.clone(), line);
    }
    println!("Status of partition reassignment:");
    for line in states.values() {
        println!("{line}");
    }
    // Then the log directory moves, one line each (an empty line when
    // there are none, as Kafka prints it).
    let (moves, moves_done) = log_dir_move_states(admin, &full.dirs).await?;
    println!("{}", moves.join("\n"));
    if ongoing.is_empty() && moves_done && !preserve_throttles {
        clear_throttles(admin, plan).await?;
    }
    Ok(())
}

async fn cancel(
    admin: &Admin,
    raw: &Raw,
    plan: &[(Tp, Vec<i32>)],
    preserve_throttles: bool,
) -> anyhow::Result<()> {
    let tps: Vec<Tp> = plan.iter().map(|(tp, _)| tp.clone()).collect();
    let active: Vec<Tp> = raw
        .list(Some(&tps))
        .await?
        .into_iter()
        .filter(|(_, (_, adding, removing))| adding.is_empty() || !removing.is_empty())
        .map(|(tp, _)| tp)
        .collect();
    if active.is_empty() {
        println!("None of the specified partition reassignments are active.");
    } else {
        let targets: Vec<(Tp, Option<Vec<i32>>)> =
            active.iter().map(|tp| (tp.clone(), None)).collect();
        let errors = raw.alter(&targets).await?;
        if !errors.is_empty() {
            let lines: Vec<String> = errors.iter().map(|(tp, m)| format!("{tp}: {m}")).collect();
            bail!(
                "Error cancelling partition reassignment{} for:\n{}",
                if errors.len() == 1 { "" } else { "s" },
                lines.join("\n")
            );
        }
        println!(
            "Successfully cancelled partition reassignment{} for: {}",
            if active.len() == 1 { "" } else { "s" },
            join(&active, ",")
        );
    }
    // Kafka prints this one without a line end.
    print!("None of the specified partition moves are active.");
    if !preserve_throttles {
        clear_throttles(admin, plan).await?;
    }
    Ok(())
}

/// Kafka's `clearAllThrottles`: deletes the replication throttles of every
/// broker (the cluster's and the plan's) and of the plan's topics.
async fn clear_throttles(admin: &Admin, plan: &[(Tp, Vec<i32>)]) -> anyhow::Result<()> {
    let mut brokers: BTreeSet<i32> = admin
        .describe_cluster()
        .await
        .map_err(client_err)?
        .brokers
        .iter()
        .map(|b| b.node_id)
        .collect();
    brokers.extend(plan.iter().flat_map(|(_, r)| r.iter().copied()));
    println!(
        "Clearing broker-level throttles on broker{} {}",
        if brokers.len() == 1 { "" } else { "s" },
        join(&brokers.iter().collect::<Vec<_>>(), ",")
    );
    let ops: Vec<AlterConfigOp> = BROKER_THROTTLES
        .iter()
        .map(|n| AlterConfigOp::delete(*n))
        .collect();
    for b in &brokers {
        admin
            .incremental_alter_configs(&ConfigResource::Broker(*b), &ops, false)
            .await
            .map_err(client_err)?;
    }
    let topics: BTreeSet<&str> = plan.iter().map(|(tp, _)| tp.0.as_str()).collect();
    println!(
        "Clearing topic-level throttles on topic{} {}",
        if topics.len() == 1 { "" } else { "s" },
        topics.iter().copied().collect::<Vec<_>>().join(",")
    );
    let ops: Vec<AlterConfigOp> = TOPIC_THROTTLES
        .iter()
        .map(|n| AlterConfigOp::delete(*n))
        .collect();
    for t in topics {
        admin
            .incremental_alter_configs(&ConfigResource::Topic(t.to_string()), &ops, false)
            .await
            .map_err(client_err)?;
    }
    Ok(())
}

/// A reassignment in progress: replicas, adding, removing.
type Progress = (Vec<i32>, Vec<i32>, Vec<i32>);
/// The partitions in progress.
type Ongoing = BTreeMap<Tp, Progress>;

fn print_current(current: &Ongoing) {
    if current.is_empty() {
        println!("No partition reassignments found.");
        return;
    }
    println!("Current partition reassignments:");
    for (tp, (replicas, adding, removing)) in current {
        let mut line = format!("{tp}: replicas: {}.", join(replicas, ","));
        if !adding.is_empty() {
            line.push_str(&format!(" adding: {}.", join(adding, ",")));
        }
        if !removing.is_empty() {
            line.push_str(&format!(" removing: {}.", join(removing, ",")));
        }
        println!("{line}");
    }
}

/// The two reassignment requests, which the native `Admin` does not make.
struct Raw {
    config: gregor_client::ClientConfig,
}

impl Raw {
    fn timeout_ms(&self) -> i32 {
        i32::try_from(self.config.request_timeout.as_millis()).unwrap_or(i32::MAX)
    }

    async fn list(&self, tps: Option<&[Tp]>) -> anyhow::Result<Ongoing> {
        let topics = tps.map(|tps| {
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for tp in tps {
                by_topic.entry(&tp.0).or_default().push(tp.1);
            }
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    ListPartitionReassignmentsTopics::default()
                        .with_name(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partition_indexes(ps)
                })
                .collect()
        });
        let req = ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(topics);
        let resp = super::wire::request(&self.config, 0, &req).await?;
        gregor_client::Error::check(resp.error_code, resp.error_message.as_deref())
            .map_err(client_err)?;
        let mut out = Ongoing::new();
        for t in resp.topics {
            for p in t.partitions {
                out.insert(
                    Tp(t.name.to_string(), p.partition_index),
                    (
                        p.replicas.iter().map(|b| b.0).collect(),
                        p.adding_replicas.iter().map(|b| b.0).collect(),
                        p.removing_replicas.iter().map(|b| b.0).collect(),
                    ),
                );
            }
        }
        Ok(out)
    }

    /// Sends the reassignments (None cancels); returns each refused
    /// partition with its message, sorted.
    async fn alter(&self, targets: &[(Tp, Option<Vec<i32>>)]) -> anyhow::Result<Vec<(Tp, String)>> {
        let mut by_topic: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
        for (tp, replicas) in targets {
            by_topic.entry(&tp.0).or_default().push(
                ReassignablePartition::default()
                    .with_partition_index(tp.1)
                    .with_replicas(
                        replicas
                            .as_ref()
                            .map(|r| r.iter().copied().map(BrokerId).collect()),
                    ),
            );
        }
        let req = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        ReassignableTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let resp = super::wire::request(&self.config, 0, &req).await?;
        gregor_client::Error::check(resp.error_code, resp.error_message.as_deref())
            .map_err(client_err)?;
        let mut errors = Vec::new();
        for t in resp.responses {
            for p in t.partitions {
                if let Some(e) = gregor_client::Error::from_code(p.error_code, None) {
                    // Java's Throwable.getMessage: the broker's message, else
                    // the error's default text.
                    let message = match (p.error_message, e) {
                        (Some(m), _) if !m.is_empty() => m.to_string(),
                        _ => kafka_protocol::error::ResponseError::try_from_code(p.error_code)
                            .map(|e| e.to_string())
                            .unwrap_or_default(),
                    };
                    errors.push((Tp(t.name.to_string(), p.partition_index), message));
                }
            }
        }
        errors.sort();
        Ok(errors)
    }
}

fn duplicates<T: Ord + Clone>(items: &[T]) -> Vec<T> {
    let mut seen = BTreeSet::new();
    let dups: BTreeSet<T> = items.iter().filter(|i| !seen.insert(*i)).cloned().collect();
    dups.into_iter().collect()
}

fn join<T: std::fmt::Display>(items: &[T], sep: &str) -> String {
    items.iter().map(T::to_string).collect::<Vec<_>>().join(sep)
}
