//! `gregor features`: kafka-features.sh (`describe`, `upgrade`, `downgrade`,
//! `disable`), printing what Kafka's FeatureCommand prints. Describe reads
//! ApiVersions' supported and finalized features; the others send
//! UpdateFeatures (`--dry-run`: validate only).

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use kafka_protocol::messages::update_features_request::FeatureUpdateKey;
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, UpdateFeaturesRequest, UpdateFeaturesResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{block_on, Conn};

pub const EXAMPLES: &str = "Examples:
  gregor features --bootstrap-server 127.0.0.1:9092 describe
  gregor features --bootstrap-server 127.0.0.1:9092 upgrade --feature transaction.version=2
  gregor features --bootstrap-server 127.0.0.1:9092 downgrade --feature transaction.version=0 --dry-run
  gregor features --bootstrap-server 127.0.0.1:9092 disable --feature transaction.version";

/// Describe or change the cluster's feature flags (KIP-584).
#[derive(Args, Debug)]
pub struct FeaturesArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: FeaturesCommand,
}

#[derive(Subcommand, Debug)]
pub enum FeaturesCommand {
    /// Describes the current active feature flags.
    Describe,
    /// Upgrades one or more feature flags.
    Upgrade {
        /// A feature upgrade we should perform, in feature=level format.
        #[arg(long = "feature", value_name = "FEATURE=LEVEL")]
        feature: Vec<String>,
        /// Validate this upgrade, but do not perform it.
        #[arg(long = "dry-run")]
        dry_run: bool,
    },
    /// Downgrades one or more feature flags.
    Downgrade {
        /// A feature downgrade we should perform, in feature=level format.
        #[arg(long = "feature", value_name = "FEATURE=LEVEL")]
        feature: Vec<String>,
        /// Perform this downgrade even if it may irreversibly destroy metadata.
        #[arg(long = "unsafe")]
        unsafe_: bool,
        /// Validate this downgrade, but do not perform it.
        #[arg(long = "dry-run")]
        dry_run: bool,
    },
    /// Disables one or more feature flags (sets them to level 0).
    Disable {
        /// A feature flag to disable.
        #[arg(long = "feature", value_name = "FEATURE")]
        feature: Vec<String>,
        /// Disable even if it may irreversibly destroy metadata.
        #[arg(long = "unsafe")]
        unsafe_: bool,
        /// Validate this disable, but do not perform it.
        #[arg(long = "dry-run")]
        dry_run: bool,
    },
}

/// Kafka's `parseNameAndLevel`.
fn parse_name_and_level(input: &str) -> anyhow::Result<(String, i16)> {
    let (name, level) = input.split_once('=').ok_or_else(|| {
        anyhow!("Can't parse feature=level string {input}: equals sign not found.")
    })?;
    let level = level.trim();
    let level: i16 = level.parse().map_err(|_| {
        anyhow!("Can't parse feature=level string {input}: unable to parse {level} as a short.")
    })?;
    Ok((name.trim().to_string(), level))
}

pub fn run(args: FeaturesArgs) -> anyhow::Result<()> {
    let config = args.conn.client_config(&[])?;
    block_on(async move {
        match args.command {
            FeaturesCommand::Describe => describe(&config).await,
            FeaturesCommand::Upgrade { feature, dry_run } => {
                let updates = feature
                    .iter()
                    .map(|f| parse_name_and_level(f))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                update(&config, "upgrade", updates, 1, dry_run).await
            }
            FeaturesCommand::Downgrade {
                feature,
                unsafe_,
                dry_run,
            } => {
                let updates = feature
                    .iter()
                    .map(|f| parse_name_and_level(f))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let kind = if unsafe_ { 3 } else { 2 };
                update(&config, "downgrade", updates, kind, dry_run).await
            }
            FeaturesCommand::Disable {
                feature,
                unsafe_,
                dry_run,
            } => {
                let updates = feature.into_iter().map(|f| (f, 0)).collect();
                let kind = if unsafe_ { 3 } else { 2 };
                update(&config, "disable", updates, kind, dry_run).await
            }
        }
    })
}

async fn describe(config: &gregor_client::ClientConfig) -> anyhow::Result<()> {
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("gregor-features"))
        .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
    let resp: ApiVersionsResponse = super::wire::request(config, 3, &req).await?;
    gregor_client::Error::check(resp.error_code, Some("ApiVersions")).map_err(super::client_err)?;
    let mut supported: Vec<_> = resp.supported_features.iter().collect();
    supported.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    let epoch = if resp.finalized_features_epoch >= 0 {
        resp.finalized_features_epoch.to_string()
    } else {
        "-".to_string()
    };
    for f in supported {
        let finalized = resp
            .finalized_features
            .iter()
            .find(|x| x.name == f.name)
            .map_or(0, |x| x.max_version_level);
        println!(
            "Feature: {}\tSupportedMinVersion: {}\tSupportedMaxVersion: {}\tFinalizedVersionLevel: {}\tEpoch: {}",
            f.name.as_str(),
            f.min_version,
            f.max_version,
            finalized,
            epoch
        );
    }
    Ok(())
}

async fn update(
    config: &gregor_client::ClientConfig,
    op: &str,
    updates: Vec<(String, i16)>,
    upgrade_type: i8,
    dry_run: bool,
) -> anyhow::Result<()> {
    if updates.is_empty() {
        bail!("You must specify at least one feature to {op}");
    }
    let req = UpdateFeaturesRequest::default()
        .with_timeout_ms(i32::try_from(config.request_timeout.as_millis()).unwrap_or(i32::MAX))
        .with_validate_only(dry_run)
        .with_feature_updates(
            updates
                .iter()
                .map(|(name, level)| {
                    FeatureUpdateKey::default()
                        .with_feature(StrBytes::from_string(name.clone()))
                        .with_max_version_level(*level)
                        // v1 carries the upgrade type (allow_downgrade is v0's).
                        .with_upgrade_type(upgrade_type)
                })
                .collect(),
        );
    let resp: UpdateFeaturesResponse = super::wire::request(config, 1, &req).await?;
    let mut results: Vec<(String, i16, Option<String>)> = updates
        .iter()
        .map(|(name, level)| {
            let r = resp.results.iter().find(|r| r.feature.as_str() == name);
            let code = r.map_or(resp.error_code, |r| r.error_code);
            let message = r
                .and_then(|r| r.error_message.as_ref())
                .or(resp.error_message.as_ref())
                .map(|m| m.to_string());
            let error = (code != 0).then(|| {
                let name = kafka_protocol::error::ResponseError::try_from_code(code)
                    .map_or_else(|| format!("error code {code}"), |e| format!("{e:?}"));
                message.unwrap_or(name)
            });
            (name.clone(), *level, error)
        })
        .collect();
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let mut failures = 0;
    for (name, level, error) in &results {
        let suffix = if op == "disable" {
            format!("disable {name}")
        } else {
            format!("{op} {name} to {level}")
        };
        match error {
            Some(e) => {
                let helper = if dry_run { "Can not " } else { "Could not " };
                println!("{helper}{suffix}. {e}");
                failures += 1;
            }
            None => {
                let verb = if dry_run { " can be " } else { " was " };
                let obj = if op == "disable" {
                    "disabled.".to_string()
                } else {
                    format!("{op}d to {level}.")
                };
                println!("{name}{verb}{obj}");
            }
        }
    }
    if failures > 0 {
        bail!("{failures} out of {} operation(s) failed.", updates.len());
    }
    Ok(())
}
