//! `gregor`: the Kafka-compatible broker and its command-line tools, in one binary.
//!
//! - `gregor server [--config server.properties] [--override key=value]...`
//! - `gregor dump-log [--print-data-log] FILE...` (like kafka-dump-log.sh)

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

mod dump_log;

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
    /// Print the batches of .log files and the entries of .index/.timeindex files.
    #[command(
        name = "dump-log",
        after_help = "Examples:\n  gregor dump-log gregor-data/orders-0/00000000000000000000.log\n  \
        gregor dump-log --print-data-log gregor-data/orders-0/*.log"
    )]
    DumpLog {
        /// Also print every record (offset, timestamp, key, value, headers).
        #[arg(long = "print-data-log", alias = "deep-iteration")]
        print_data_log: bool,
        /// Files to dump (.log, .index, .timeindex).
        #[arg(long = "files", value_delimiter = ',', required = false)]
        files_flag: Vec<PathBuf>,
        files: Vec<PathBuf>,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server {
            config,
            properties,
            overrides,
        } => server(config.or(properties), overrides),
        Command::DumpLog {
            print_data_log,
            files_flag,
            files,
        } => {
            let mut all = files_flag;
            all.extend(files);
            dump_log::run(&all, print_data_log)
        }
    };
    if let Err(e) = result {
        eprintln!("gregor: error: {e:#}");
        std::process::exit(1);
    }
}

fn server(config: Option<PathBuf>, overrides: Vec<String>) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
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
        let broker = tokio::task::spawn_blocking(move || gregor_broker::Broker::open(config, clock))
            .await
            .context("opening the broker")??;
        let listener = gregor_broker::server::bind(&broker).await.with_context(|| {
            let l = &broker.config.listener;
            format!("binding {}://{}:{}", l.name, l.host, l.port)
        })?;
        let addr = listener.local_addr()?;
        let (host, _) = broker.advertised_endpoint();
        tracing::info!(%addr, cluster_id = %broker.cluster_id(), node_id = broker.node_id(), "broker started");
        let mut out = std::io::stdout().lock();
        writeln!(out, "gregor: listening on {}://{}:{}", broker.config.listener.name, host_for_display(&host, addr), addr.port())?;
        out.flush()?;
        drop(out);
        gregor_broker::server::run(broker, listener, shutdown_signal()).await;
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

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install SIGTERM handler");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
