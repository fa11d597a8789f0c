//! `gregor configs --entity-type users|clients|ips`: kafka-configs.sh's
//! client quotas (KIP-546) and IP connection rate quotas (KIP-612), through
//! DescribeClientQuotas / AlterClientQuotas.
//!
//! ```text
//! gregor configs --alter --entity-type clients --entity-name app --add-config producer_byte_rate=1024
//! gregor configs --alter --entity-type users --entity-name u --entity-type clients --entity-default \
//!     --add-config consumer_byte_rate=2048
//! gregor configs --alter --entity-type users --entity-default --delete-config producer_byte_rate
//! gregor configs --describe --entity-type clients [--entity-name app | --entity-default]
//! gregor configs --alter --entity-type ips --entity-name 10.0.0.1 --add-config connection_creation_rate=10
//! ```
//!
//! `--describe` matches strictly, as Kafka's tool does: `--entity-type
//! users` lists user entities, not (user, client-id) ones. Describing
//! users also lists their SCRAM credentials (`configs_users.rs`).

use anyhow::{anyhow, bail};
use gregor_client::admin::{ClientQuotaEntity, QuotaAlteration, QuotaMatch};
use gregor_client::Admin;

use super::configs::{parse_add_config, ConfigsArgs, DEFAULT_ENTITY};
use super::{block_on, client_err};

const QUOTA_KEYS: &[&str] = &[
    "producer_byte_rate",
    "consumer_byte_rate",
    "request_percentage",
    "controller_mutation_rate",
];

/// kafka-configs.sh's entity type names and their wire names.
fn wire_type(entity_type: &str) -> Option<&'static str> {
    match entity_type {
        "users" => Some("user"),
        "clients" => Some("client-id"),
        "ips" => Some("ip"),
        _ => None,
    }
}

/// Whether `args` are about client quotas (clients, users with quota keys,
/// the default user, or describing users).
pub fn is_quota_command(args: &ConfigsArgs) -> bool {
    let types = &args.entity_type;
    if types.iter().any(|t| t == "clients" || t == "ips") {
        return true;
    }
    if types.len() != 1 || types[0] != "users" {
        return types.len() > 1 && types.iter().all(|t| t == "users");
    }
    if args.describe || args.entity_default() {
        return true;
    }
    let quota_key = |k: &str| QUOTA_KEYS.contains(&k.trim());
    let added = args
        .add_config
        .as_deref()
        .and_then(|a| parse_add_config(a).ok())
        .unwrap_or_default();
    added.iter().any(|(k, _)| quota_key(k)) || args.delete_config.iter().any(|k| quota_key(k))
}

/// One entity part: its wire type (`user`, `client-id`) and name: `None`
/// any, `Some(None)` the default, `Some(Some(n))` exactly `n`.
type Part = (&'static str, Option<Option<String>>);

/// The entity parts: each --entity-type with the --entity-name or
/// --entity-default given after it (`None` when none is: any name).
fn parts(args: &ConfigsArgs) -> anyhow::Result<Vec<Part>> {
    if args.entity_name.len() > args.entity_type.len() {
        bail!("Each --entity-name or --entity-default needs its --entity-type");
    }
    let mut out: Vec<Part> = Vec::new();
    for (i, t) in args.entity_type.iter().enumerate() {
        let Some(wire) = wire_type(t) else {
            bail!("Entity type {t} cannot be combined with users or clients");
        };
        if out.iter().any(|(w, _)| *w == wire) {
            bail!("Entity type {t} is given more than once");
        }
        let name = args.entity_name.get(i).map(|n| {
            if n == DEFAULT_ENTITY {
                None
            } else {
                Some(n.clone())
            }
        });
        if let Some(Some(n)) = &name {
            if n.is_empty() {
                bail!("An entity name must not be empty");
            }
        }
        out.push((wire, name));
    }
    if out.len() > 1 && out.iter().any(|(w, _)| *w == "ip") {
        bail!("Only users and clients may be given together as one entity");
    }
    Ok(out)
}

/// The quota changes `--add-config` and `--delete-config` ask for.
fn ops(add: Option<&str>, delete: &[String]) -> anyhow::Result<Vec<(String, Option<f64>)>> {
    let mut out = Vec::new();
    for (k, v) in parse_add_config(add.unwrap_or_default())? {
        let value: f64 = v
            .parse()
            .map_err(|_| anyhow!("Invalid value {v:?} for {k}: a number is expected"))?;
        out.push((k, Some(value)));
    }
    for d in delete.iter().map(|d| d.trim()).filter(|d| !d.is_empty()) {
        out.push((d.to_string(), None));
    }
    Ok(out)
}

pub fn run(args: ConfigsArgs) -> anyhow::Result<()> {
    if args.all {
        bail!("--all is not valid with --entity-type users, clients or ips");
    }
    let parts = parts(&args)?;
    let ops = if args.alter {
        if parts.iter().any(|(_, n)| n.is_none()) {
            bail!("An entity name must be specified with --alter");
        }
        let ops = ops(args.add_config.as_deref(), &args.delete_config)?;
        if ops.is_empty() {
            bail!("--alter needs --add-config or --delete-config");
        }
        ops
    } else {
        if args.add_config.is_some() || !args.delete_config.is_empty() {
            bail!("--add-config and --delete-config are only valid with --alter");
        }
        Vec::new()
    };
    let also_scram = args.describe
        && args.entity_type.len() == 1
        && args.entity_type[0] == "users"
        && !args.entity_default();
    let admin = args.conn.admin()?;
    let r = block_on(async {
        let r = if args.alter {
            alter(&admin, &parts, ops).await
        } else {
            describe(&admin, &parts).await
        };
        admin.close().await;
        r
    });
    r?;
    if also_scram {
        return super::configs_users::run(args);
    }
    Ok(())
}

async fn alter(
    admin: &Admin,
    parts: &[Part],
    ops: Vec<(String, Option<f64>)>,
) -> anyhow::Result<()> {
    let entity: ClientQuotaEntity = parts
        .iter()
        .map(|(t, n)| (t.to_string(), n.clone().flatten()))
        .collect();
    let alteration = QuotaAlteration { entity, ops };
    for result in admin
        .alter_client_quotas(std::slice::from_ref(&alteration), false)
        .await
        .map_err(client_err)?
    {
        result.map_err(client_err)?;
    }
    let described: Vec<String> = parts
        .iter()
        .map(|(t, n)| {
            // kafka-configs.sh's entity type without its plural `s`.
            let kind = match *t {
                "user" => "user",
                "client-id" => "client",
                _ => "ip",
            };
            let name = n.clone().flatten();
            format!("{kind} {}", name.as_deref().unwrap_or(DEFAULT_ENTITY))
        })
        .collect();
    println!("Completed updating config for {}.", described.join(", "));
    Ok(())
}

/// Kafka's lines: `Quota configs for user-principal 'u', client-id 'c' are
/// producer_byte_rate=1024.0`, `the default client-id` for a default.
async fn describe(admin: &Admin, parts: &[Part]) -> anyhow::Result<()> {
    let components: Vec<(String, QuotaMatch)> = parts
        .iter()
        .map(|(t, n)| {
            let m = match n {
                None => QuotaMatch::Any,
                Some(None) => QuotaMatch::Default,
                Some(Some(name)) => QuotaMatch::Exact(name.clone()),
            };
            (t.to_string(), m)
        })
        .collect();
    let entries = admin
        .describe_client_quotas(&components, true)
        .await
        .map_err(client_err)?;
    let mut out = String::new();
    for (entity, values) in entries {
        out.push_str(&describe_line(&entity, &values));
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}

fn describe_line(entity: &ClientQuotaEntity, values: &[(String, f64)]) -> String {
    let mut names = Vec::new();
    for (wire, label) in [
        ("user", "user-principal"),
        ("client-id", "client-id"),
        ("ip", "ip"),
    ] {
        if let Some((_, name)) = entity.iter().find(|(t, _)| t == wire) {
            names.push(match name {
                Some(n) => format!("{label} '{n}'"),
                None => format!("the default {label}"),
            });
        }
    }
    let values: Vec<String> = values
        .iter()
        .map(|(k, v)| format!("{k}={}", java_double(*v)))
        .collect();
    format!(
        "Quota configs for {} are {}",
        names.join(", "),
        values.join(", ")
    )
}

/// A double as Java prints it for the values quotas take (`1024.0`).
fn java_double(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e7 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_lines_as_kafka() {
        let entity = vec![
            ("user".to_string(), Some("alice".to_string())),
            ("client-id".to_string(), None),
        ];
        assert_eq!(
            describe_line(
                &entity,
                &[
                    ("consumer_byte_rate".into(), 2048.0),
                    ("request_percentage".into(), 12.5)
                ]
            ),
            "Quota configs for user-principal 'alice', the default client-id are consumer_byte_rate=2048.0, request_percentage=12.5"
        );
    }

    #[test]
    fn ops_parse() {
        let o = ops(
            Some("producer_byte_rate=1024,consumer_byte_rate=2048"),
            &["request_percentage".into()],
        )
        .unwrap();
        assert_eq!(
            o,
            vec![
                ("producer_byte_rate".into(), Some(1024.0)),
                ("consumer_byte_rate".into(), Some(2048.0)),
                ("request_percentage".into(), None),
            ]
        );
        assert!(ops(Some("producer_byte_rate=fast"), &[]).is_err());
    }
}
