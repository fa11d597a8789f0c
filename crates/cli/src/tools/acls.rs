//! `gregor acls`: kafka-acls.sh. Adds, removes and lists ACLs with Kafka's
//! options, the `--producer`/`--consumer` expansions and Kafka's output.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use clap::Args;
use gregor_security::acl::{
    AccessControlEntry, AccessControlEntryFilter, AclBinding, AclBindingFilter, AclOperation,
    PatternType, PermissionType, ResourcePattern, ResourcePatternFilter, ResourceType,
    CLUSTER_RESOURCE_NAME,
};

use super::{block_on, client_err, Conn};

pub const EXAMPLES: &str = "Examples:
  gregor acls --bootstrap-server 127.0.0.1:9092 --add --allow-principal User:alice --operation Read --topic orders
  gregor acls --bootstrap-server 127.0.0.1:9092 --add --allow-principal User:bob --producer --topic logs- --resource-pattern-type prefixed
  gregor acls --bootstrap-server 127.0.0.1:9092 --list --topic orders --resource-pattern-type match
  gregor acls --bootstrap-server 127.0.0.1:9092 --remove --force --topic orders";

/// Add, remove or list ACLs.
#[derive(Args, Debug)]
pub struct AclsArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[arg(long, conflicts_with_all = ["remove", "list"])]
    pub add: bool,
    #[arg(long, conflicts_with = "list")]
    pub remove: bool,
    #[arg(long)]
    pub list: bool,
    #[arg(long = "allow-principal", value_name = "PRINCIPAL")]
    pub allow_principal: Vec<String>,
    #[arg(long = "deny-principal", value_name = "PRINCIPAL")]
    pub deny_principal: Vec<String>,
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_host: Vec<String>,
    #[arg(long = "deny-host", value_name = "HOST")]
    pub deny_host: Vec<String>,
    /// Read, Write, Create, Delete, Alter, Describe, ClusterAction,
    /// AlterConfigs, DescribeConfigs, IdempotentWrite, CreateTokens,
    /// DescribeTokens, All.
    #[arg(long, value_name = "OPERATION")]
    pub operation: Vec<String>,
    #[arg(long)]
    pub topic: Vec<String>,
    #[arg(long)]
    pub group: Vec<String>,
    #[arg(long)]
    pub cluster: bool,
    #[arg(long = "transactional-id")]
    pub transactional_id: Vec<String>,
    /// literal, prefixed (add/remove/list), match or any (remove/list).
    #[arg(long = "resource-pattern-type", default_value = "literal")]
    pub resource_pattern_type: String,
    /// WRITE, DESCRIBE, CREATE on topics (and WRITE, DESCRIBE on
    /// transactional ids; IDEMPOTENT_WRITE on the cluster with --idempotent).
    #[arg(long)]
    pub producer: bool,
    #[arg(long)]
    pub idempotent: bool,
    /// READ, DESCRIBE on topics and READ on groups.
    #[arg(long)]
    pub consumer: bool,
    /// Do not ask for confirmation (required to remove: no prompt here).
    #[arg(long)]
    pub force: bool,
    #[arg(long)]
    pub principal: Option<String>,
}

fn resources(a: &AclsArgs) -> Vec<(ResourceType, String)> {
    let mut out = Vec::new();
    out.extend(a.topic.iter().map(|t| (ResourceType::Topic, t.clone())));
    out.extend(a.group.iter().map(|g| (ResourceType::Group, g.clone())));
    if a.cluster {
        out.push((ResourceType::Cluster, CLUSTER_RESOURCE_NAME.to_string()));
    }
    out.extend(
        a.transactional_id
            .iter()
            .map(|t| (ResourceType::TransactionalId, t.clone())),
    );
    out
}

/// Each resource's ACL operations, with Kafka's --producer/--consumer expansions.
fn operations(a: &AclsArgs) -> anyhow::Result<Vec<(ResourceType, String, Vec<AclOperation>)>> {
    use AclOperation as Op;
    let explicit: Vec<Op> = a
        .operation
        .iter()
        .map(|o| Op::parse(o).ok_or_else(|| anyhow!("unknown operation {o}")))
        .collect::<anyhow::Result<_>>()?;
    let mut out = Vec::new();
    if a.producer || a.consumer {
        if a.consumer && a.group.is_empty() {
            bail!("With --consumer you must specify a --group");
        }
        for (rt, name) in resources(a) {
            let mut ops = Vec::new();
            match rt {
                ResourceType::Topic if a.producer => {
                    ops.extend([Op::Write, Op::Describe, Op::Create])
                }
                ResourceType::TransactionalId if a.producer => {
                    ops.extend([Op::Write, Op::Describe])
                }
                _ => {}
            }
            match rt {
                ResourceType::Topic if a.consumer => ops.extend([Op::Read, Op::Describe]),
                ResourceType::Group if a.consumer => ops.push(Op::Read),
                _ => {}
            }
            ops.dedup();
            if !ops.is_empty() {
                out.push((rt, name, ops));
            }
        }
        if a.producer && a.idempotent {
            out.push((
                ResourceType::Cluster,
                CLUSTER_RESOURCE_NAME.into(),
                vec![Op::IdempotentWrite],
            ));
        }
    } else {
        if explicit.is_empty() {
            bail!("You must specify one of: --operation, --producer, --consumer");
        }
        for (rt, name) in resources(a) {
            out.push((rt, name, explicit.clone()));
        }
    }
    Ok(out)
}

fn entries(a: &AclsArgs, ops: &[AclOperation]) -> Vec<AccessControlEntry> {
    let hosts = |h: &Vec<String>| {
        if h.is_empty() {
            vec!["*".to_string()]
        } else {
            h.clone()
        }
    };
    let mut out = Vec::new();
    for (principals, hosts, perm) in [
        (
            &a.allow_principal,
            hosts(&a.allow_host),
            PermissionType::Allow,
        ),
        (&a.deny_principal, hosts(&a.deny_host), PermissionType::Deny),
    ] {
        for p in principals {
            for h in &hosts {
                for &op in ops {
                    out.push(AccessControlEntry {
                        principal: p.clone(),
                        host: h.clone(),
                        operation: op,
                        permission: perm,
                    });
                }
            }
        }
    }
    out
}

fn print_resource(verb: &str, pattern: &ResourcePattern, entries: &[AccessControlEntry]) {
    let lines: Vec<String> = entries.iter().map(|e| format!("\t{e}")).collect();
    println!(
        "{verb} for resource `{pattern}`: \n {} \n",
        lines.join("\n")
    );
}

pub fn run(args: AclsArgs) -> anyhow::Result<()> {
    let pattern_type = PatternType::parse(&args.resource_pattern_type)
        .filter(|p| *p != PatternType::Unknown)
        .ok_or_else(|| {
            anyhow!(
                "unknown --resource-pattern-type {}",
                args.resource_pattern_type
            )
        })?;
    if !(args.add || args.remove || args.list) {
        bail!("Command must include exactly one action: --list, --add, --remove.");
    }
    if args.add && matches!(pattern_type, PatternType::Match | PatternType::Any) {
        bail!(
            "A '--resource-pattern-type' value of '{}' is not valid when adding acls.",
            args.resource_pattern_type
        );
    }
    if args.remove && !args.force {
        bail!("--remove asks for confirmation in Kafka's tool; give --force to remove without one");
    }
    let admin = args.conn.admin()?;
    block_on(async move {
        let filter_for = |rt: ResourceType, name: Option<String>| AclBindingFilter {
            pattern: ResourcePatternFilter {
                resource_type: rt,
                name,
                pattern_type,
            },
            entry: AccessControlEntryFilter {
                principal: None,
                host: None,
                operation: AclOperation::Any,
                permission: PermissionType::Any,
            },
        };
        let targets: Vec<(ResourceType, Option<String>)> = if resources(&args).is_empty() {
            vec![(ResourceType::Any, None)]
        } else {
            resources(&args)
                .into_iter()
                .map(|(rt, n)| (rt, Some(n)))
                .collect()
        };
        if args.add {
            for (rt, name, ops) in operations(&args)? {
                let pattern = ResourcePattern {
                    resource_type: rt,
                    name,
                    pattern_type,
                };
                let es = entries(&args, &ops);
                if es.is_empty() {
                    bail!("You must specify one of: --allow-principal, --deny-principal when trying to add ACLs.");
                }
                print_resource("Adding ACLs", &pattern, &es);
                let bindings: Vec<AclBinding> = es
                    .into_iter()
                    .map(|entry| AclBinding {
                        pattern: pattern.clone(),
                        entry,
                    })
                    .collect();
                for r in admin.create_acls(&bindings).await.map_err(client_err)? {
                    r.map_err(client_err)?;
                }
            }
        }
        if args.remove {
            let mut filters = Vec::new();
            if args.allow_principal.is_empty() && args.deny_principal.is_empty() {
                filters.extend(targets.iter().map(|(rt, n)| filter_for(*rt, n.clone())));
            } else {
                for (rt, name, ops) in operations(&args)? {
                    for e in entries(&args, &ops) {
                        let mut f = filter_for(rt, Some(name.clone()));
                        f.entry = AccessControlEntryFilter {
                            principal: Some(e.principal),
                            host: Some(e.host),
                            operation: e.operation,
                            permission: e.permission,
                        };
                        filters.push(f);
                    }
                }
            }
            for r in admin.delete_acls(&filters).await.map_err(client_err)? {
                r.map_err(client_err)?;
            }
        }
        // Kafka lists the resource's ACLs after every action.
        let mut by_pattern: BTreeMap<ResourcePattern, Vec<AccessControlEntry>> = BTreeMap::new();
        for (rt, name) in &targets {
            let mut f = filter_for(*rt, name.clone());
            if let (true, Some(p)) = (args.list, &args.principal) {
                f.entry.principal = Some(p.clone());
            }
            for b in admin.describe_acls(&f).await.map_err(client_err)? {
                by_pattern.entry(b.pattern).or_default().push(b.entry);
            }
        }
        admin.close().await;
        for (pattern, es) in by_pattern {
            print_resource("Current ACLs", &pattern, &es);
        }
        Ok(())
    })
}
