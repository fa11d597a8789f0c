//! `gregor`: the Kafka-compatible broker and its command-line tools, in one binary.
//!
//! - `gregor server [--config server.properties] [--override key=value]...`
//! - `gregor dump-log [--print-data-log] FILE...` (like kafka-dump-log.sh)
//! - `gregor storage random-uuid|format|info` (like kafka-storage.sh): see `storage_tool`.
//! - the Kafka command-line tools (`gregor topics`, ...): see `tools`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

mod dump_log;
#[cfg(feature = "otel")]
mod otel;
mod storage_tool;
mod tools;

#[derive(Parser)]
#[command(
    name = "gregor",
    version,
    about = "A Kafka-compatible event streaming broker and its tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker (single node: broker and controller). With no arguments it
    /// listens on PLAINTEXT://127.0.0.1:9092 and keeps data in ./gregor-data.
    #[command(
        after_help = "Examples:\n  gregor server\n  gregor server --config config/server.properties\n  \
        gregor server --override listeners=PLAINTEXT://127.0.0.1:9093 --override log.dirs=/tmp/b2"
    )]
    Server {
        /// A server.properties file (Kafka's names and format).
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
        /// Same as --config, positional, as kafka-server-start.sh takes it.
        #[arg(conflicts_with = "config")]
        properties: Option<PathBuf>,
        /// Override one property: --override key=value (repeatable).
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Print the batches of .log files and the entries of .index/.timeindex/.txnindex files.
    #[command(
        name = "dump-log",
        after_help = "Examples:\n  gregor dump-log gregor-data/orders-0/00000000000000000000.log\n  \
        gregor dump-log --print-data-log gregor-data/orders-0/*.log"
    )]
    DumpLog {
        /// Also print every record (offset, timestamp, key, value, headers).
        #[arg(long = "print-data-log", alias = "deep-iteration")]
        print_data_log: bool,
        /// For .index/.timeindex/.txnindex files: check every entry against
        /// the .log beside it instead of printing the entries (exit 1 on a
        /// mismatch).
        #[arg(long = "verify-index-only")]
        verify_index_only: bool,
        /// For .index/.timeindex/.txnindex files: check sizes and ordering
        /// only (exit 1 on failure).
        #[arg(long = "index-sanity-check")]
        index_sanity_check: bool,
        /// Files to dump (.log, .index, .timeindex, .txnindex).
        #[arg(long = "files", value_delimiter = ',', required = false)]
        files_flag: Vec<PathBuf>,
        files: Vec<PathBuf>,
    },
    /// Format the log directories of a node, print their state, or make a
    /// cluster id (kafka-storage.sh).
    #[command(after_help = storage_tool::EXAMPLES)]
    Storage(storage_tool::StorageArgs),
    /// Create, list, describe, alter and delete topics (kafka-topics.sh).
    #[command(after_help = tools::topics::EXAMPLES)]
    Topics(tools::topics::TopicsArgs),
    /// Describe and alter topic and broker configs (kafka-configs.sh).
    #[command(after_help = tools::configs::EXAMPLES)]
    Configs(tools::configs::ConfigsArgs),
    /// Add, remove and list ACLs (kafka-acls.sh).
    #[command(after_help = tools::acls::EXAMPLES)]
    Acls(tools::acls::AclsArgs),
    /// Delete records before given offsets (kafka-delete-records.sh).
    #[command(name = "delete-records", after_help = tools::delete_records::EXAMPLES)]
    DeleteRecords(tools::delete_records::DeleteRecordsArgs),
    /// Describe brokers' log directories as JSON (kafka-log-dirs.sh).
    #[command(name = "log-dirs", after_help = tools::log_dirs::EXAMPLES)]
    LogDirs(tools::log_dirs::LogDirsArgs),
    /// Print partition offsets by time (kafka-get-offsets.sh).
    #[command(name = "get-offsets", after_help = tools::get_offsets::EXAMPLES)]
    GetOffsets(tools::get_offsets::GetOffsetsArgs),
    /// List, describe and delete consumer groups; reset their offsets (kafka-consumer-groups.sh).
    #[command(name = "consumer-groups", after_help = tools::consumer_groups::EXAMPLES)]
    ConsumerGroups(tools::consumer_groups::ConsumerGroupsArgs),
    /// Send lines from stdin or a file as records (kafka-console-producer.sh).
    #[command(name = "console-producer", after_help = tools::console_producer::EXAMPLES)]
    ConsoleProducer(tools::console_producer::ConsoleProducerArgs),
    /// Measure producer throughput and latency (kafka-producer-perf-test.sh).
    #[command(name = "producer-perf-test", after_help = tools::producer_perf::EXAMPLES)]
    ProducerPerfTest(tools::producer_perf::ProducerPerfArgs),
    /// Print the records of a topic (kafka-console-consumer.sh).
    #[command(name = "console-consumer", after_help = tools::console_consumer::EXAMPLES)]
    ConsoleConsumer(tools::console_consumer::ConsoleConsumerArgs),
    /// Measure consumer throughput (kafka-consumer-perf-test.sh).
    #[command(name = "consumer-perf-test", after_help = tools::consumer_perf::EXAMPLES)]
    ConsumerPerfTest(tools::consumer_perf::ConsumerPerfArgs),
    /// Measure produce-to-consume latency (kafka-e2e-latency.sh / EndToEndLatency).
    #[command(name = "end-to-end-latency", after_help = tools::end_to_end_latency::EXAMPLES)]
    EndToEndLatency(tools::end_to_end_latency::EndToEndArgs),
    /// Describe, upgrade, downgrade or disable cluster features (kafka-features.sh).
    #[command(name = "features", after_help = tools::features::EXAMPLES)]
    Features(tools::features::FeaturesArgs),
    /// Describe the KRaft metadata quorum (kafka-metadata-quorum.sh).
    #[command(name = "metadata-quorum", after_help = tools::metadata_quorum::EXAMPLES)]
    MetadataQuorum(tools::metadata_quorum::MetadataQuorumArgs),
    /// List, describe and abort transactions, find hanging ones, describe producers (kafka-transactions.sh).
    #[command(name = "transactions", after_help = tools::transactions::EXAMPLES)]
    Transactions(tools::transactions::TransactionsArgs),
    /// Elect preferred or unclean leaders (kafka-leader-election.sh).
    #[command(name = "leader-election", after_help = tools::leader_election::EXAMPLES)]
    LeaderElection(tools::leader_election::LeaderElectionArgs),
    /// Move partitions' replicas between brokers (kafka-reassign-partitions.sh).
    #[command(name = "reassign-partitions", after_help = tools::reassign_partitions::EXAMPLES)]
    ReassignPartitions(tools::reassign_partitions::ReassignArgs),
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => parse_error(e),
    };
    if !matches!(cli.command, Command::Server { .. }) {
        default_sigpipe();
    }
    let result = match cli.command {
        Command::Server {
            config,
            properties,
            overrides,
        } => server(config.or(properties), overrides),
        Command::DumpLog {
            print_data_log,
            verify_index_only,
            index_sanity_check,
            files_flag,
            files,
        } => {
            let mut all = files_flag;
            all.extend(files);
            let mode = if verify_index_only {
                dump_log::Mode::VerifyIndex
            } else if index_sanity_check {
                dump_log::Mode::SanityCheck
            } else {
                dump_log::Mode::Print {
                    data: print_data_log,
                }
            };
            dump_log::run(&all, mode)
        }
        Command::Storage(args) => match storage_tool::run(args) {
            Ok(code) => {
                let _ = std::io::stdout().flush();
                std::process::exit(code)
            }
            Err(e) => tool_exit(Err(e)),
        },
        Command::Topics(args) => tool_exit(tools::topics::run(args)),
        Command::Configs(args) => tool_exit(tools::configs::run(args)),
        Command::Acls(args) => tool_exit(tools::acls::run(args)),
        Command::DeleteRecords(args) => tool_exit(tools::delete_records::run(args)),
        Command::LogDirs(args) => tool_exit(tools::log_dirs::run(args)),
        Command::GetOffsets(args) => tool_exit(tools::get_offsets::run(args)),
        Command::ConsumerGroups(args) => tool_exit(tools::consumer_groups::run(args)),
        Command::ConsoleProducer(args) => tool_exit(tools::console_producer::run(args)),
        Command::ProducerPerfTest(args) => tool_exit(tools::producer_perf::run(args)),
        Command::ConsoleConsumer(args) => tool_exit(tools::console_consumer::run(args)),
        Command::ConsumerPerfTest(args) => tool_exit(tools::consumer_perf::run(args)),
        Command::EndToEndLatency(args) => tool_exit(tools::end_to_end_latency::run(args)),
        Command::MetadataQuorum(args) => tool_exit(tools::metadata_quorum::run(args)),
        Command::Features(args) => tool_exit(tools::features::run(args)),
        Command::LeaderElection(args) => tool_exit(tools::leader_election::run(args)),
        Command::Transactions(args) => tool_exit(tools::transactions::run(args)),
        Command::ReassignPartitions(args) => tool_exit(tools::reassign_partitions::run(args)),
    };
    if let Err(e) = result {
        eprintln!("gregor: error: {e:#}");
        std::process::exit(1);
    }
}

/// Gives SIGPIPE back its default action, so that a tool whose reader goes
/// away (`gregor topics --list | head -1`) ends at its next write, quietly and
/// with the status a shell shows as 141, as `cat` and `ls` do. Rust starts
/// every program with SIGPIPE ignored, which turns that write into an EPIPE
/// error on which `println!` panics; one process-wide setting covers every
/// print of every tool (and of dump-log) instead of checking each write.
///
/// Not for `gregor server`: a broker must see a vanished client as an
/// error on that connection, never be killed by it. Tools' own sockets are
/// unaffected either way: std's socket writes pass MSG_NOSIGNAL.
#[cfg(unix)]
fn default_sigpipe() {
    use std::ffi::c_int;
    extern "C" {
        // POSIX signal(2); the handler argument is a pointer-sized value.
        fn signal(signum: c_int, handler: usize) -> usize;
    }
    const SIGPIPE: c_int = 13;
    const SIG_DFL: usize = 0;
    // SAFETY: called once at start-up, before any thread (the async runtime)
    // exists; SIG_DFL installs no Rust code as a handler.
    unsafe {
        signal(SIGPIPE, SIG_DFL);
    }
}

#[cfg(not(unix))]
fn default_sigpipe() {}

/// A command-line error: the tools print one line (`Error: ...`) and exit 1;
/// `server`, `dump-log` and --help/--version behave as clap makes them.
fn parse_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    let tool = std::env::args()
        .nth(1)
        .is_some_and(|a| tools::TOOL_NAMES.contains(&a.as_str()) || a == "storage");
    if !tool || matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    let rendered = e.render().to_string();
    // The first paragraph (clap may list missing arguments on the next lines).
    let first = rendered
        .trim_start()
        .split("\n\n")
        .next()
        .unwrap_or("invalid arguments")
        .split('\n')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    let first = first.trim_start_matches("error: ");
    eprintln!("Error: {first} (see --help)");
    std::process::exit(1);
}

/// Ends a tool: exit 0, or one `Error: ...` line on stderr and exit 1.
fn tool_exit(result: anyhow::Result<()>) -> anyhow::Result<()> {
    if let Err(e) = result {
        let _ = std::io::stdout().flush();
        eprintln!("Error: {}", tools::one_line(&e));
        std::process::exit(1);
    }
    Ok(())
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`): text, or one
/// JSON object per line with `GREGOR_LOG_FORMAT=json` (for log shippers).
fn init_logging() {
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let json = std::env::var("GREGOR_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    if json {
        tracing_subscriber::fmt()
            .json()
            .with_current_span(false)
            .with_writer(std::io::stderr)
            .with_env_filter(filter())
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_env_filter(filter())
            .init();
    }
}

fn server(config: Option<PathBuf>, overrides: Vec<String>) -> anyhow::Result<()> {
    // Before the runtime's threads start (see gregor_broker::malloc).
    gregor_broker::malloc::keep_request_memory();
    init_logging();
    let mut props = BTreeMap::new();
    if let Some(path) = &config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        props = gregor_broker::BrokerConfig::parse_properties(&text)
            .with_context(|| format!("parsing {}", path.display()))?;
    }
    for o in overrides {
        let Some((k, v)) = o.split_once('=') else {
            bail!("--override expects key=value, got '{o}'")
        };
        props.insert(k.trim().to_string(), v.trim().to_string());
    }
    let config = gregor_broker::BrokerConfig::from_props(props).context("invalid configuration")?;
    // Before the runtime: the exporter's blocking HTTP client must live outside it.
    // Declared before `runtime`, so dropped after it: the last spans are flushed.
    #[cfg(feature = "otel")]
    let _otel = otel::init().context("starting the OpenTelemetry export")?;
    let threads = config
        .num_io_threads
        .min(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .thread_name("gregor")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let clock: Arc<dyn gregor_storage::Clock> = Arc::new(gregor_storage::SystemClock);
        // A quorum node serves Raft before its logs load, so elections go on meanwhile.
        let quorum = match config.quorum.clone() {
            Some(settings) => Some(
                gregor_broker::cluster::QuorumRuntime::start(&config, settings, clock.clone())
                    .await
                    .context("starting the metadata quorum")?,
            ),
            None => None,
        };
        if let Some(q) = quorum.as_ref().filter(|q| !q.link.settings.broker) {
            // A controller-only node: the quorum and the active controller's
            // duties, no Kafka listener.
            let signals = shutdown_signal();
            if let Some(l) = &q.link.settings.controller_listener {
                let mut out = std::io::stdout().lock();
                writeln!(out, "gregor: listening on {}://{}:{}", l.name, l.host, l.port)?;
                out.flush()?;
            }
            tracing::info!(node_id = config.node_id, "controller started");
            tokio::select! {
                _ = signals => {}
                reason = q.fatal() => halt(&reason),
            }
            if let Some(q) = quorum {
                q.stop().await;
            }
            return Ok(());
        }
        let link = quorum.as_ref().map(|q| q.link.clone());
        // Returns once the metadata is ready: the logs load in the background
        // and the listeners serve meanwhile (see gregor_broker::log_loading).
        let broker = tokio::task::spawn_blocking(move || {
            gregor_broker::Broker::open_while_loading(config, clock, link)
        })
        .await
        .context("opening the broker")??;
        let listeners = gregor_broker::server::bind(&broker)
            .await
            .context("starting the listeners")?;
        let addr = listeners.local_addr()?;
        let http = gregor_web::bind(&broker)
            .await
            .context("starting the HTTP listener")?;
        let signals = shutdown_signal();
        tracing::info!(%addr, cluster_id = %broker.cluster_id(), node_id = broker.node_id(), "broker started");
        // One line per listener, the first listener's first (tests and
        // supervisors read that one: keep its format).
        let mut out = std::io::stdout().lock();
        for l in listeners.iter() {
            let host = broker
                .advertised_endpoint_on(&l.name)
                .map(|(host, _)| host)
                .unwrap_or_default();
            writeln!(out, "gregor: listening on {}://{}:{}", l.name, host_for_display(&host, l.local_addr), l.local_addr.port())?;
        }
        for url in http.urls() {
            writeln!(out, "gregor: http listening on {url}")?;
        }
        out.flush()?;
        drop(out);
        let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
        let http_task = tokio::spawn(gregor_web::serve(http, broker.clone(), async move {
            let _ = http_stopped.await;
        }));
        let fatal = {
            let broker = broker.clone();
            let quorum = quorum.as_ref().map(|q| q.link.clone().fatal());
            async move {
                let reason = match quorum {
                    Some(q) => tokio::select! {
                        r = broker.halted() => r,
                        r = q => r,
                    },
                    None => broker.halted().await,
                };
                halt(&reason)
            }
        };
        let stop = async move {
            tokio::select! {
                _ = signals => {}
                _ = fatal => {}
            }
        };
        gregor_broker::server::run(broker, listeners, stop).await;
        let _ = http_stop.send(());
        let _ = http_task.await;
        if let Some(quorum) = quorum {
            quorum.stop().await;
        }
        Ok(())
    })
}

fn host_for_display(advertised: &str, addr: std::net::SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        advertised.to_string()
    } else {
        addr.ip().to_string()
    }
}

/// Kafka's `Exit.halt(1)` after a fatal fault (the metadata log's disk
/// failed): no controlled shutdown, nothing more written; the cluster moves
/// this node's leaderships once its session lapses, and a supervisor may
/// restart it when the disk is fixed.
fn halt(reason: &str) -> ! {
    tracing::error!(reason, "halting the process after a fatal fault");
    eprintln!("gregor: halting: {reason}");
    std::process::exit(1)
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is
/// called, not when it is first polled: call it before announcing the
/// listener, so a supervisor's SIGTERM right after the announcement stops
/// the broker cleanly instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            },
            (term, int) => {
                let e = term.err().or(int.err());
                tracing::error!(error = ?e, "cannot install the signal handlers");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
