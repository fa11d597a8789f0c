//! `gregor configs --entity-type users`: kafka-configs.sh's SCRAM
//! credentials of users (KIP-554). Users' client quotas are in
//! `configs_quotas.rs`.
//!
//! ```text
//! gregor configs --alter --entity-type users --entity-name alice \
//!     --add-config 'SCRAM-SHA-256=[iterations=8192,password=alice-secret]'
//! gregor configs --alter --entity-type users --entity-name alice --delete-config SCRAM-SHA-512
//! gregor configs --describe --entity-type users [--entity-name alice]
//! ```

use anyhow::{anyhow, bail};
use gregor_client::admin::{ScramCredentialInfo, ScramMechanism, UserScramCredentialAlteration};
use gregor_client::Admin;

use super::configs::{parse_add_config, ConfigsArgs};
use super::{block_on, client_err};

/// Kafka's default iteration count when `iterations=` is not given.
const DEFAULT_ITERATIONS: i32 = 4096;

pub fn run(args: ConfigsArgs) -> anyhow::Result<()> {
    if args.entity_default() {
        bail!("--entity-default with --entity-type users names client quotas: give quota keys");
    }
    if args.all {
        bail!("--all is not valid with --entity-type users");
    }
    let name = args.single_name();
    if name.as_deref() == Some("") {
        bail!("A user name must not be empty");
    }
    let alterations = if args.alter {
        let Some(user) = &name else {
            bail!("An entity name must be specified with --alter");
        };
        let alterations = alterations(user, args.add_config.as_deref(), &args.delete_config)?;
        if alterations.is_empty() {
            bail!("--alter needs --add-config or --delete-config");
        }
        alterations
    } else {
        if args.add_config.is_some() || !args.delete_config.is_empty() {
            bail!("--add-config and --delete-config are only valid with --alter");
        }
        Vec::new()
    };
    let admin = args.conn.admin()?;
    block_on(async move {
        let r = if args.alter {
            alter(&admin, name.unwrap_or_default(), &alterations).await
        } else {
            describe(&admin, name).await
        };
        admin.close().await;
        r
    })
}

fn mechanism(name: &str) -> anyhow::Result<ScramMechanism> {
    ScramMechanism::from_mechanism_name(name).ok_or_else(|| {
        anyhow!("Invalid config key {name} for users: gregor supports only the SCRAM credentials SCRAM-SHA-256 and SCRAM-SHA-512 (or the quota keys producer_byte_rate, consumer_byte_rate, request_percentage, controller_mutation_rate)")
    })
}

/// The alterations `--add-config` and `--delete-config` ask for.
fn alterations(
    user: &str,
    add: Option<&str>,
    delete: &[String],
) -> anyhow::Result<Vec<UserScramCredentialAlteration>> {
    let mut out = Vec::new();
    for d in delete.iter().map(|d| d.trim()).filter(|d| !d.is_empty()) {
        out.push(UserScramCredentialAlteration::Deletion {
            user: user.to_string(),
            mechanism: mechanism(d)?,
        });
    }
    for (key, value) in parse_add_config(add.unwrap_or_default())? {
        let m = mechanism(&key)?;
        let mut iterations = DEFAULT_ITERATIONS;
        let mut password = None;
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some(("iterations", i)) => {
                    iterations = i
                        .parse()
                        .map_err(|_| anyhow!("Invalid iterations {i:?} for {key}"))?
                }
                Some(("password", p)) => password = Some(p.to_string()),
                _ => bail!(
                    "Invalid value for {key}: expected [iterations=N,password=P], found {part:?}"
                ),
            }
        }
        let password =
            password.ok_or_else(|| anyhow!("{key} needs a password: {key}=[password=...]"))?;
        out.push(UserScramCredentialAlteration::Upsertion {
            user: user.to_string(),
            info: ScramCredentialInfo {
                mechanism: m,
                iterations,
            },
            password,
            salt: None,
        });
    }
    Ok(out)
}

async fn alter(
    admin: &Admin,
    user: String,
    alterations: &[UserScramCredentialAlteration],
) -> anyhow::Result<()> {
    // One request per change: Kafka's controller refuses a user named twice
    // in one request (DUPLICATE_RESOURCE), so the documented
    // `SCRAM-SHA-256=[...],SCRAM-SHA-512=[...]` would fail as one request.
    // The changes apply in order; the first refusal stops the rest.
    for a in alterations {
        for (_, result) in admin
            .alter_user_scram_credentials(std::slice::from_ref(a))
            .await
            .map_err(client_err)?
        {
            result.map_err(client_err)?;
        }
    }
    println!("Completed updating config for user {user}.");
    Ok(())
}

/// Kafka's lines: `SCRAM credential configs for user-principal 'alice' are
/// SCRAM-SHA-256=iterations=8192, SCRAM-SHA-512=iterations=4096`. A named
/// user without credentials prints nothing, as in Kafka.
async fn describe(admin: &Admin, user: Option<String>) -> anyhow::Result<()> {
    let names: Option<Vec<&str>> = user.as_deref().map(|u| vec![u]);
    let results = admin
        .describe_user_scram_credentials(names.as_deref())
        .await
        .map_err(client_err)?;
    let mut out = String::new();
    for (user, result) in results {
        match result {
            Ok(infos) => {
                let text: Vec<String> = infos
                    .iter()
                    .map(|i| format!("{}=iterations={}", i.mechanism, i.iterations))
                    .collect();
                out.push_str(&format!(
                    "SCRAM credential configs for user-principal '{user}' are {}\n",
                    text.join(", ")
                ));
            }
            Err(e) if e.code() == Some(91) => {} // RESOURCE_NOT_FOUND
            Err(e) => out.push_str(&format!(
                "Error retrieving SCRAM credential configs for user-principal '{user}': {e}\n"
            )),
        }
    }
    print!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafka_syntax() {
        let a = alterations(
            "alice",
            Some(
                "SCRAM-SHA-256=[iterations=8192,password=alice-secret],SCRAM-SHA-512=[password=x]",
            ),
            &["SCRAM-SHA-512".into()],
        )
        .unwrap();
        assert_eq!(a.len(), 3);
        assert!(matches!(
            &a[0],
            UserScramCredentialAlteration::Deletion {
                mechanism: ScramMechanism::Sha512,
                ..
            }
        ));
        match &a[1] {
            UserScramCredentialAlteration::Upsertion { info, password, .. } => {
                assert_eq!(info.iterations, 8192);
                assert_eq!(info.mechanism, ScramMechanism::Sha256);
                assert_eq!(password, "alice-secret");
            }
            other => panic!("{other:?}"),
        }
        match &a[2] {
            UserScramCredentialAlteration::Upsertion { info, .. } => {
                assert_eq!(info.iterations, DEFAULT_ITERATIONS)
            }
            other => panic!("{other:?}"),
        }
        assert!(alterations("a", Some("producer_byte_rate=1024"), &[]).is_err());
        assert!(alterations("a", Some("SCRAM-SHA-256=[iterations=10]"), &[]).is_err());
        assert!(alterations("a", Some("SCRAM-SHA-256=[iterations=x,password=p]"), &[]).is_err());
        assert!(alterations("a", None, &["SCRAM-SHA-1".into()]).is_err());
    }
}
