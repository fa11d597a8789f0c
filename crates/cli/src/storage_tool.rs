//! `gregor storage`: Kafka's `kafka-storage.sh` (`StorageTool` and
//! `Formatter`): `random-uuid`, `format` and `info`, with Kafka's output,
//! messages and exit codes. The files it reads and writes, and the checks, are
//! `gregor_broker::meta_properties`'s, the same the server runs at start.
//!
//! Unlike the network tools it takes no `--bootstrap-server`: it works on the
//! directories named by a server config (`log.dirs` and `metadata.log.dir`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use gregor_broker::broker::base64_uuid;
use gregor_broker::meta_properties::{
    self, MetaProperties, MetaPropertiesEnsemble, MetaPropertiesError, MetaPropertiesVersion,
    META_PROPERTIES_NAME,
};
use gregor_broker::BrokerConfig;
use gregor_metadata::{scram, MetadataRecord};
use gregor_security::ScramMechanism;
use gregor_storage::Clock;

pub const EXAMPLES: &str = "Examples:
  gregor storage random-uuid
  gregor storage format -t \"$(gregor storage random-uuid)\" -c config/server.properties
  gregor storage format --cluster-id MkU3OEVBNTcwNTJENDM2Qk --config server.properties --ignore-formatted
  gregor storage format -t \"$(gregor storage random-uuid)\" -c server.properties --add-scram 'SCRAM-SHA-256=[name=admin,password=admin-secret]'
  gregor storage info -c config/server.properties";

const FORMAT_EXAMPLES: &str = "Examples:
  gregor storage format -t \"$(gregor storage random-uuid)\" -c config/server.properties
  gregor storage format --cluster-id MkU3OEVBNTcwNTJENDM2Qk --config server.properties --ignore-formatted
  gregor storage format -t \"$(gregor storage random-uuid)\" -c server.properties --add-scram 'SCRAM-SHA-256=[name=admin,password=admin-secret]'";

const INFO_EXAMPLES: &str = "Examples:
  gregor storage info -c config/server.properties";

/// The metadata.version Kafka 4.0 formats with by default (its latest
/// production version), named in the "Formatting ..." lines as Kafka names
/// it. Gregor writes no `bootstrap.checkpoint` yet, so nothing records it.
const METADATA_VERSION: &str = "4.0-IV3";

/// Format and describe the log directories of a node (kafka-storage.sh).
#[derive(Args, Debug)]
pub struct StorageArgs {
    #[command(subcommand)]
    pub command: StorageCommand,
}

#[derive(Subcommand, Debug)]
pub enum StorageCommand {
    /// Get information about the log directories on this node.
    #[command(after_help = INFO_EXAMPLES)]
    Info {
        /// The server configuration file to use.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
    },
    /// Format the log directories on this node: write meta.properties into
    /// every log.dirs entry and metadata.log.dir.
    #[command(after_help = FORMAT_EXAMPLES, group = clap::ArgGroup::new("quorum").multiple(false))]
    Format {
        /// The server configuration file to use.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
        /// The cluster ID to use (e.g. from `gregor storage random-uuid`).
        #[arg(long = "cluster-id", short = 't', allow_hyphen_values = true)]
        cluster_id: String,
        /// Skip directories that are already formatted rather than failing.
        #[arg(long = "ignore-formatted", short = 'g')]
        ignore_formatted: bool,
        /// Initialize a controller as a single-node dynamic quorum (not supported yet).
        #[arg(long, short = 's', group = "quorum")]
        standalone: bool,
        /// Initialize a server without a dynamic quorum topology (the default here).
        #[arg(long = "no-initial-controllers", short = 'N', group = "quorum")]
        no_initial_controllers: bool,
        /// The initial dynamic quorum, id@host:port:directory,... (not supported yet).
        #[arg(
            long = "initial-controllers",
            short = 'I',
            group = "quorum",
            value_name = "VOTERS"
        )]
        initial_controllers: Option<String>,
        /// A SCRAM credential for the bootstrap metadata, repeatable:
        /// 'SCRAM-SHA-256=[name=alice,password=alice-secret]' (also
        /// iterations=N, default 4096, and salt=BASE64).
        #[arg(long = "add-scram", short = 'S', value_name = "SCRAM")]
        add_scram: Vec<String>,
    },
    /// Print a random UUID (for a cluster id).
    #[command(name = "random-uuid")]
    RandomUuid,
}

/// Runs the tool; `Ok` carries the exit code (`info` exits 1 when it found problems).
pub fn run(args: StorageArgs) -> anyhow::Result<i32> {
    match args.command {
        StorageCommand::RandomUuid => {
            let mut rng = meta_properties::system_rng();
            println!("{}", base64_uuid(meta_properties::random_uuid(&mut rng)));
            Ok(0)
        }
        StorageCommand::Info { config } => {
            let config = load_config(&config)?;
            Ok(info(&directories(&config), &mut std::io::stdout().lock())?)
        }
        StorageCommand::Format {
            config,
            cluster_id,
            ignore_formatted,
            standalone,
            no_initial_controllers: _,
            initial_controllers,
            add_scram,
        } => {
            if standalone {
                bail!("--standalone is not supported yet: Gregor has no dynamic controller quorum (KIP-853); format without it");
            }
            if initial_controllers.is_some() {
                bail!("--initial-controllers is not supported yet: Gregor has no dynamic controller quorum (KIP-853); format without it");
            }
            let mut rng = rand::thread_rng();
            let bootstrap = add_scram
                .iter()
                .map(|s| parse_add_scram(s, &mut rng))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let config = load_config(&config)?;
            let clock = gregor_storage::SystemClock;
            format(
                &config,
                &cluster_id,
                ignore_formatted,
                &bootstrap,
                clock.now_ms(),
                &mut std::io::stdout().lock(),
            )?;
            Ok(0)
        }
    }
}

fn load_config(path: &Path) -> anyhow::Result<BrokerConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let props = BrokerConfig::parse_properties(&text)
        .with_context(|| format!("parsing {}", path.display()))?;
    BrokerConfig::from_props(props)
        .with_context(|| format!("invalid configuration {}", path.display()))
}

/// Kafka's `configToLogDirectories`: `log.dirs` and `metadata.log.dir`, sorted, once each.
fn directories(config: &BrokerConfig) -> BTreeSet<PathBuf> {
    let mut dirs: BTreeSet<PathBuf> = config.log_dirs.iter().map(|d| normalize(d)).collect();
    dirs.insert(normalize(&config.metadata_log_dir));
    dirs
}

/// The path as Java's `Paths.get` prints it: no trailing `/`, no `.` parts.
fn normalize(path: &Path) -> PathBuf {
    path.components().collect()
}

/// Kafka's `ScramParser`: `SCRAM-SHA-256=[name=alice,password=alice-secret]`
/// (values may be quoted; `iterations`, default 4096, and a base64 `salt`
/// are optional) as a credential record.
fn parse_add_scram(text: &str, rng: &mut impl rand::Rng) -> anyhow::Result<MetadataRecord> {
    let (mechanism, rest) = text
        .split_once('=')
        .with_context(|| format!("Failed to find equals sign in SCRAM argument '{text}'"))?;
    let mechanism = ScramMechanism::from_mechanism_name(mechanism.trim()).with_context(|| {
        format!("The add-scram mechanism {mechanism} is not supported (use SCRAM-SHA-256 or SCRAM-SHA-512)")
    })?;
    let body = rest
        .trim()
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .with_context(|| {
            format!("Expected configuration string to be enclosed in square brackets: '{text}'")
        })?;
    let (mut name, mut password, mut salt, mut iterations) = (None, None, None, 4096);
    for part in body.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once('=').with_context(|| {
            format!("Failed to find equals sign in SCRAM configuration '{part}'")
        })?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value)
            .to_string();
        match key.trim() {
            "name" => name = Some(value),
            "password" => password = Some(value),
            "iterations" => {
                iterations = value
                    .parse::<i32>()
                    .with_context(|| format!("Invalid iterations '{value}'"))?;
                if iterations < mechanism.min_iterations()
                    || iterations > mechanism.max_iterations()
                {
                    bail!(
                        "The number of iterations must be between {} and {}, found {iterations}",
                        mechanism.min_iterations(),
                        mechanism.max_iterations()
                    );
                }
            }
            "salt" => {
                use base64::Engine;
                salt = Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(&value)
                        .with_context(|| format!("Invalid base64 salt '{value}'"))?,
                )
            }
            other => bail!(
                "Unknown SCRAM configuration key '{other}' (use name, password, iterations, salt)"
            ),
        }
    }
    let name = name
        .filter(|n| !n.is_empty())
        .with_context(|| format!("You must supply 'name' to add-scram: '{text}'"))?;
    let password =
        password.with_context(|| format!("You must supply 'password' to add-scram: '{text}'"))?;
    let salt = salt.unwrap_or_else(|| gregor_security::scram::random_salt(rng));
    Ok(scram::credential_record(
        &name, mechanism, &password, salt, iterations,
    ))
}

/// Kafka's `Formatter.doFormat`: checks the dirs, then writes each empty
/// one; the metadata dir gets the `bootstrap` records, if any.
fn format(
    config: &BrokerConfig,
    cluster_id: &str,
    ignore_formatted: bool,
    bootstrap: &[MetadataRecord],
    now_ms: i64,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    if config.node_id < 0 {
        bail!("You must specify a valid non-negative node ID.");
    }
    let metadata_dir = normalize(&config.metadata_log_dir);
    let mut dirs = MetaPropertiesEnsemble::load(directories(config), Some(&metadata_dir));
    dirs.verify(Some(cluster_id), Some(config.node_id))?;
    if !ignore_formatted {
        if let Some(first) = dirs.formatted_dirs().keys().next() {
            bail!(
                "Log directory {} is already formatted. Use --ignore-formatted to ignore this directory and format the others.",
                first.display()
            );
        }
    }
    if !dirs.error_dirs().is_empty() {
        for dir in dirs.error_dirs().keys() {
            writeln!(
                out,
                "I/O error trying to read log directory {}. Ignoring...",
                dir.display()
            )?;
        }
        if dirs.empty_dirs().is_empty() && dirs.formatted_dirs().is_empty() {
            bail!("No available log directories to format.");
        }
    }
    if dirs.empty_dirs().is_empty() {
        writeln!(out, "All of the log directories are already formatted.")?;
        return Ok(());
    }
    let bootstrap_metadata_dir = dirs.empty_dirs().contains(&metadata_dir) && !bootstrap.is_empty();
    let mut printed = Ok(());
    let mut rng = meta_properties::system_rng();
    dirs.format_empty_dirs(cluster_id, config.node_id, now_ms, &mut rng, &mut |dir| {
        let kind = if dir == metadata_dir {
            "metadata directory"
        } else {
            "data directory"
        };
        if printed.is_ok() {
            printed = writeln!(
                out,
                "Formatting {kind} {} with metadata.version {METADATA_VERSION}.",
                dir.display()
            );
        }
    })
    .map_err(|e| match e {
        MetaPropertiesError::Io { path, source } => anyhow::anyhow!(
            "Error while writing meta.properties file {}: {source}",
            path.parent().unwrap_or(&path).display()
        ),
        other => other.into(),
    })?;
    if bootstrap_metadata_dir {
        gregor_broker::bootstrap::write(&metadata_dir, bootstrap, now_ms).with_context(|| {
            format!(
                "Error while writing the bootstrap metadata in {}",
                metadata_dir.display()
            )
        })?;
    }
    Ok(printed?)
}

/// Kafka's `StorageTool.infoCommand`: returns the exit code (1 if it found problems).
fn info(directories: &BTreeSet<PathBuf>, out: &mut dyn std::io::Write) -> anyhow::Result<i32> {
    let mut problems = Vec::new();
    let mut found = Vec::new();
    let mut first: Option<MetaProperties> = None;
    for dir in directories {
        if !dir.is_dir() {
            problems.push(if dir.exists() {
                format!("{} is not a directory", dir.display())
            } else {
                format!("{} does not exist", dir.display())
            });
            continue;
        }
        found.push(dir.display().to_string());
        let path = dir.join(META_PROPERTIES_NAME);
        match MetaProperties::read(dir) {
            Ok(None) => problems.push(format!("{} is not formatted.", dir.display())),
            Ok(Some(props)) => match &first {
                None => first = Some(props),
                Some(prev) if prev.cluster_id != props.cluster_id => {
                    problems.push("Mismatched cluster IDs between storage directories.".into())
                }
                Some(prev) if prev.node_id != props.node_id => {
                    problems.push("Mismatched node IDs between storage directories.".into())
                }
                Some(_) => {}
            },
            Err(MetaPropertiesError::Io { source, .. }) => {
                problems.push(format!("Error loading {}: {source}", path.display()))
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    if first
        .as_ref()
        .is_some_and(|p| p.version == MetaPropertiesVersion::V0)
    {
        problems.push(
            "The kafka configuration file appears to be for a cluster in KRaft mode, but the \
             directories are formatted for legacy mode."
                .into(),
        );
    }
    if directories.is_empty() {
        writeln!(out, "No directories specified.")?;
        return Ok(0);
    }
    if !found.is_empty() {
        let s = if found.len() == 1 { "y" } else { "ies" };
        writeln!(out, "Found log director{s}:")?;
        for d in &found {
            writeln!(out, "  {d}")?;
        }
        writeln!(out)?;
    }
    if let Some(props) = &first {
        writeln!(out, "Found metadata: {props}")?;
        writeln!(out)?;
    }
    if problems.is_empty() {
        return Ok(0);
    }
    let s = if problems.len() == 1 { "" } else { "s" };
    writeln!(out, "Found problem{s}:")?;
    for p in &problems {
        writeln!(out, "  {p}")?;
    }
    writeln!(out)?;
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dirs: &str, meta: Option<&str>) -> BrokerConfig {
        let mut props = std::collections::BTreeMap::new();
        props.insert("log.dirs".to_string(), dirs.to_string());
        if let Some(m) = meta {
            props.insert("metadata.log.dir".to_string(), m.to_string());
        }
        BrokerConfig::from_props(props).unwrap()
    }

    fn run_format(c: &BrokerConfig, id: &str, g: bool) -> (anyhow::Result<()>, String) {
        let mut out = Vec::new();
        let r = format(c, id, g, &[], 0, &mut out);
        (r, String::from_utf8(out).unwrap())
    }

    fn run_info(c: &BrokerConfig) -> (i32, String) {
        let mut out = Vec::new();
        let code = info(&directories(c), &mut out).unwrap();
        (code, String::from_utf8(out).unwrap())
    }

    #[test]
    fn add_scram_writes_the_bootstrap() {
        let mut rng = rand::thread_rng();
        let record = parse_add_scram(
            "SCRAM-SHA-256=[name=admin,password=\"admin-secret\",iterations=8192,salt=AQID]",
            &mut rng,
        )
        .unwrap();
        let want = scram::credential_record(
            "admin",
            ScramMechanism::Sha256,
            "admin-secret",
            vec![1, 2, 3],
            8192,
        );
        assert_eq!(record, want);
        for bad in [
            "SCRAM-SHA-1=[name=a,password=b]",
            "SCRAM-SHA-256=name=a,password=b",
            "SCRAM-SHA-256=[password=b]",
            "SCRAM-SHA-256=[name=a]",
            "SCRAM-SHA-256=[name=a,password=b,iterations=10]",
            "SCRAM-SHA-256=[name=a,password=b,color=red]",
            "SCRAM-SHA-256",
        ] {
            assert!(parse_add_scram(bad, &mut rng).is_err(), "{bad}");
        }
        let root = tempfile::tempdir().unwrap();
        let (a, m) = (root.path().join("a"), root.path().join("m"));
        let c = config(a.to_str().unwrap(), Some(m.to_str().unwrap()));
        let mut out = Vec::new();
        format(
            &c,
            "MkU3OEVBNTcwNTJENDM2Qk",
            false,
            std::slice::from_ref(&want),
            0,
            &mut out,
        )
        .unwrap();
        assert_eq!(gregor_broker::bootstrap::read(&m).unwrap(), vec![want]);
        assert!(gregor_broker::bootstrap::read(&a).unwrap().is_empty());
    }

    #[test]
    fn format_then_info() {
        let root = tempfile::tempdir().unwrap();
        let (a, m) = (root.path().join("a"), root.path().join("m"));
        let c = config(a.to_str().unwrap(), Some(m.to_str().unwrap()));
        let (code, text) = run_info(&c);
        assert_eq!(code, 1);
        assert!(text.starts_with("Found problems:\n"), "{text}");
        assert!(text.contains(&format!("  {} does not exist\n", a.display())));

        let (r, text) = run_format(&c, "C1", false);
        r.unwrap();
        assert_eq!(
            text,
            format!(
                "Formatting data directory {} with metadata.version 4.0-IV3.\n\
                 Formatting metadata directory {} with metadata.version 4.0-IV3.\n",
                a.display(),
                m.display()
            )
        );
        let (code, text) = run_info(&c);
        assert_eq!(code, 0, "{text}");
        let props = MetaProperties::read(&a).unwrap().unwrap();
        assert_eq!(
            text,
            format!(
                "Found log directories:\n  {}\n  {}\n\nFound metadata: {{cluster.id=C1, directory.id={}, node.id=1, version=1}}\n\n",
                a.display(),
                m.display(),
                base64_uuid(props.directory_id.unwrap())
            )
        );

        let (r, _) = run_format(&c, "C1", false);
        let e = r.unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "Log directory {} is already formatted. Use --ignore-formatted to ignore this directory and format the others.",
                a.display()
            )
        );
        let (r, text) = run_format(&c, "C1", true);
        r.unwrap();
        assert_eq!(text, "All of the log directories are already formatted.\n");
        // -g does not let another cluster id in.
        let (r, _) = run_format(&c, "C2", true);
        assert!(r
            .unwrap_err()
            .to_string()
            .starts_with("Invalid cluster.id in: "));
    }

    #[test]
    fn ignore_formatted_formats_the_rest() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        run_format(&config(a.to_str().unwrap(), None), "C1", false)
            .0
            .unwrap();
        let both = config(&format!("{},{}/", a.display(), b.display()), None);
        let (r, text) = run_format(&both, "C1", true);
        r.unwrap();
        assert_eq!(
            text,
            format!(
                "Formatting data directory {} with metadata.version 4.0-IV3.\n",
                b.display()
            )
        );
        let (pa, pb) = (
            MetaProperties::read(&a).unwrap().unwrap(),
            MetaProperties::read(&b).unwrap().unwrap(),
        );
        assert_eq!(pa.cluster_id, pb.cluster_id);
        assert_ne!(pa.directory_id, pb.directory_id);
    }

    #[test]
    fn info_reports_mismatches_and_unformatted_dirs() {
        let root = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            root.path().join("a"),
            root.path().join("b"),
            root.path().join("c"),
        );
        run_format(&config(a.to_str().unwrap(), None), "C1", false)
            .0
            .unwrap();
        run_format(&config(b.to_str().unwrap(), None), "C2", false)
            .0
            .unwrap();
        std::fs::create_dir_all(&c).unwrap();
        let all = config(
            &format!("{},{},{}", a.display(), b.display(), c.display()),
            None,
        );
        let (code, text) = run_info(&all);
        assert_eq!(code, 1);
        assert!(text
            .contains("Found problems:\n  Mismatched cluster IDs between storage directories.\n"));
        assert!(text.contains(&format!("  {} is not formatted.\n", c.display())));
    }
}
