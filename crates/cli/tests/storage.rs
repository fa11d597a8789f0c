//! `gregor storage` (kafka-storage.sh) and the formatting contract of
//! `gregor server`, run as processes: a node with a controller quorum
//! configured starts only on dirs formatted for it; a bare node formats its
//! own dirs on first start, as before.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{run_bounded, Client, ConfigServer};

/// How long a tool run, or a server that must refuse to start, may take.
const DEADLINE: Duration = Duration::from_secs(30);

/// Runs `gregor <args>` to completion, killing it (and failing) after `DEADLINE`.
fn gregor(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gregor"));
    cmd.args(args);
    run_bounded(cmd, None, DEADLINE)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Asserts exit 0 and returns stdout.
fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Asserts exit 1 with exactly one stderr line, `prefix` + something
/// containing `needle`; returns that line.
fn fails(out: Output, prefix: &str, needle: &str) -> String {
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit {:?}\nstdout:\n{}\nstderr:\n{err}",
        out.status,
        stdout(&out)
    );
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(lines.len(), 1, "one {prefix:?} line expected:\n{err}");
    assert!(lines[0].contains(needle), "{:?} lacks {needle:?}", lines[0]);
    lines[0].to_string()
}

/// A new server config file in `root` naming `log.dirs` and the other `extra` lines.
fn properties(root: &Path, log_dirs: &[&Path], extra: &[&str]) -> PathBuf {
    let dirs: Vec<String> = log_dirs.iter().map(|d| d.display().to_string()).collect();
    let mut text = format!(
        "listeners=PLAINTEXT://127.0.0.1:0\nlog.dirs={}\n",
        dirs.join(",")
    );
    for line in extra {
        text.push_str(line);
        text.push('\n');
    }
    static FILES: AtomicUsize = AtomicUsize::new(0);
    let n = FILES.fetch_add(1, Ordering::Relaxed);
    let path = root.join(format!("server-{n}.properties"));
    std::fs::write(&path, text).expect("writing server.properties");
    path
}

fn read_meta(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("meta.properties")).expect("reading meta.properties")
}

/// The `key=value` lines of a meta.properties file, in file order.
fn meta_lines(dir: &Path) -> Vec<(String, String)> {
    read_meta(dir)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("key=value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn meta_value(dir: &Path, key: &str) -> String {
    meta_lines(dir)
        .into_iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("{key} missing in {}", dir.display()))
        .1
}

/// Asserts `s` is a Kafka Uuid: 22 chars of URL-safe base64, 16 bytes.
fn assert_kafka_uuid(s: &str) -> [u8; 16] {
    assert_eq!(s.len(), 22, "{s:?}");
    let bytes = URL_SAFE_NO_PAD.decode(s).expect("URL-safe base64");
    bytes.try_into().expect("16 bytes")
}

/// Starts `gregor server --config FILE`, which must come up.
fn start_server(config: &Path) -> (ConfigServer, u16) {
    let server = ConfigServer::start(config, Stdio::null())
        .unwrap_or_else(|status| panic!("gregor server exited ({status}) instead of listening"));
    let port = server.port;
    (server, port)
}

fn cluster_id_of(port: u16) -> String {
    let md = Client::connect(port).metadata(&[]);
    md.cluster_id.expect("cluster id").to_string()
}

#[test]
fn random_uuid_prints_a_kafka_uuid() {
    let a = ok(gregor(&["storage", "random-uuid"]));
    let b = ok(gregor(&["storage", "random-uuid"]));
    assert!(a.ends_with('\n') && a.lines().count() == 1, "{a:?}");
    let bytes = assert_kafka_uuid(a.trim());
    assert_eq!(bytes[6] >> 4, 4, "a version 4 UUID");
    assert!(!a.starts_with('-'), "Kafka never starts one with '-'");
    assert_ne!(a, b);
}

#[test]
fn format_then_info() {
    let root = tempfile::tempdir().unwrap();
    let (a, b, m) = (
        root.path().join("a"),
        root.path().join("b"),
        root.path().join("m"),
    );
    let meta_dir = format!("metadata.log.dir={}", m.display());
    let config = properties(root.path(), &[&a, &b], &["node.id=7", &meta_dir]);
    let config = config.to_str().unwrap();

    // Before: every dir is a problem, exit 1.
    let out = gregor(&["storage", "info", "-c", config]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        format!(
            "Found problems:\n  {} does not exist\n  {} does not exist\n  {} does not exist\n\n",
            a.display(),
            b.display(),
            m.display()
        )
    );

    let id = "MkU3OEVBNTcwNTJENDM2Qk";
    let text = ok(gregor(&["storage", "format", "-t", id, "-c", config]));
    assert_eq!(
        text,
        format!(
            "Formatting data directory {} with metadata.version 4.0-IV3.\n\
             Formatting data directory {} with metadata.version 4.0-IV3.\n\
             Formatting metadata directory {} with metadata.version 4.0-IV3.\n",
            a.display(),
            b.display(),
            m.display()
        )
    );
    // Kafka's file: a blank comment, the date, the keys.
    let raw = read_meta(&a);
    let mut lines = raw.lines();
    assert_eq!(lines.next(), Some("#"));
    let date = lines.next().unwrap_or_default();
    assert!(date.starts_with('#') && date.contains(" UTC "), "{date:?}");
    let keys: Vec<String> = meta_lines(&a).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["cluster.id", "directory.id", "node.id", "version"]);
    let mut dir_ids = Vec::new();
    for dir in [&a, &b, &m] {
        assert_eq!(meta_value(dir, "version"), "1");
        assert_eq!(meta_value(dir, "cluster.id"), id);
        assert_eq!(meta_value(dir, "node.id"), "7");
        let dir_id = meta_value(dir, "directory.id");
        assert_kafka_uuid(&dir_id);
        dir_ids.push(dir_id);
    }
    dir_ids.sort();
    dir_ids.dedup();
    assert_eq!(dir_ids.len(), 3, "a fresh directory.id per dir");

    let text = ok(gregor(&["storage", "info", "--config", config]));
    assert_eq!(
        text,
        format!(
            "Found log directories:\n  {}\n  {}\n  {}\n\n\
             Found metadata: {{cluster.id={id}, directory.id={}, node.id=7, version=1}}\n\n",
            a.display(),
            b.display(),
            m.display(),
            meta_value(&a, "directory.id"),
        )
    );

    // A dir formatted for another cluster, and an unformatted one, are problems.
    std::fs::remove_file(b.join("meta.properties")).unwrap();
    let other = properties(root.path(), &[&b], &["node.id=7"]);
    ok(gregor(&[
        "storage",
        "format",
        "--cluster-id",
        "OtherClusterIdAAAAAAAA",
        "--config",
        other.to_str().unwrap(),
    ]));
    let config = properties(root.path(), &[&a, &b, &root.path().join("c")], &[]);
    std::fs::create_dir_all(root.path().join("c")).unwrap();
    let out = gregor(&["storage", "info", "-c", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("Found problems:\n  Mismatched cluster IDs between storage directories.\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "  {} is not formatted.\n",
            root.path().join("c").display()
        )),
        "{text}"
    );
}

#[test]
fn format_twice_fails_unless_ignore_formatted() {
    let root = tempfile::tempdir().unwrap();
    let a = root.path().join("a");
    let config = properties(root.path(), &[&a], &[]);
    let config = config.to_str().unwrap();
    let id = "-startsWithADashAAAAAAA"; // accepted, as with Kafka's --cluster-id=...
    ok(gregor(&["storage", "format", "-t", id, "-c", config]));
    let before = read_meta(&a);
    fails(
        gregor(&["storage", "format", "-t", id, "-c", config]),
        "Error: ",
        &format!(
            "Log directory {} is already formatted. Use --ignore-formatted to ignore this directory and format the others.",
            a.display()
        ),
    );
    let text = ok(gregor(&["storage", "format", "-g", "-t", id, "-c", config]));
    assert_eq!(text, "All of the log directories are already formatted.\n");
    // Another cluster id is refused even with --ignore-formatted.
    fails(
        gregor(&[
            "storage",
            "format",
            "--ignore-formatted",
            "-t",
            "AnotherIdAAAAAAAAAAAAA",
            "-c",
            config,
        ]),
        "Error: ",
        "Expected AnotherIdAAAAAAAAAAAAA, but read -startsWithADashAAAAAAA",
    );
    assert_eq!(read_meta(&a), before, "the file is untouched");
    // A missing cluster id is an argument error: one line, exit 1.
    fails(
        gregor(&["storage", "format", "-c", config]),
        "Error: ",
        "--cluster-id",
    );
    fails(
        gregor(&["storage", "format", "--standalone", "-t", id, "-c", config]),
        "Error: ",
        "not supported yet",
    );
}

#[test]
fn quorum_node_refuses_unformatted_dir_then_starts_once_formatted() {
    let root = tempfile::tempdir().unwrap();
    let a = root.path().join("a");
    // The config parser accepts both keys; nothing listens on the voter's port.
    let config = properties(
        root.path(),
        &[&a],
        &[
            "process.roles=broker,controller",
            "node.id=1",
            "controller.quorum.voters=1@127.0.0.1:1",
            "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0",
            "controller.listener.names=CONTROLLER",
        ],
    );
    let config = config.to_str().unwrap();
    fails(
        gregor(&["server", "--config", config]),
        "gregor: error: ",
        &format!(
            "No readable meta.properties files found in {} (have you run `gregor storage format`",
            a.display()
        ),
    );
    assert!(
        !a.join("meta.properties").exists(),
        "it must not format itself"
    );

    let id = "QuorumClusterAAAAAAAAA";
    ok(gregor(&["storage", "format", "-t", id, "-c", config]));
    let (_server, port) = start_server(Path::new(config));
    assert_eq!(cluster_id_of(port), id);
}

#[test]
fn server_refuses_dirs_of_another_node_or_cluster() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    let node1 = properties(root.path(), &[&a], &["node.id=1"]);
    ok(gregor(&[
        "storage",
        "format",
        "-t",
        "ClusterOneAAAAAAAAAAAA",
        "-c",
        node1.to_str().unwrap(),
    ]));
    // Even a bare node (no quorum configured) keeps off another node's data.
    let dirs = format!("log.dirs={}", a.display());
    fails(
        gregor(&[
            "server",
            "--override",
            "listeners=PLAINTEXT://127.0.0.1:0",
            "--override",
            &dirs,
            "--override",
            "node.id=2",
        ]),
        "gregor: error: ",
        "Stored node id 1 doesn't match previous node id 2 in",
    );

    let other = properties(root.path(), &[&b], &["node.id=1"]);
    ok(gregor(&[
        "storage",
        "format",
        "-t",
        "ClusterTwoAAAAAAAAAAAA",
        "-c",
        other.to_str().unwrap(),
    ]));
    let both = properties(
        root.path(),
        &[&a, &b],
        &[
            "node.id=1",
            "controller.quorum.voters=1@127.0.0.1:1",
            "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0",
            "controller.listener.names=CONTROLLER",
        ],
    );
    fails(
        gregor(&["server", "--config", both.to_str().unwrap()]),
        "gregor: error: ",
        "Expected ClusterOneAAAAAAAAAAAA, but read ClusterTwoAAAAAAAAAAAA",
    );
}

#[test]
fn bare_server_formats_its_own_dirs() {
    let mut broker = common::Broker::start();
    let dir = broker.log_dir();
    assert_eq!(meta_value(&dir, "version"), "1");
    assert_eq!(meta_value(&dir, "node.id"), "1");
    assert_kafka_uuid(&meta_value(&dir, "directory.id"));
    let cluster = meta_value(&dir, "cluster.id");
    assert_kafka_uuid(&cluster);
    assert_eq!(cluster_id_of(broker.port), cluster);
    let before = read_meta(&dir);
    broker.stop_clean();
    broker.restart();
    assert_eq!(read_meta(&dir), before, "a restart keeps the identity");
    assert_eq!(cluster_id_of(broker.port), cluster);

    // What it wrote is what `gregor storage info` reads.
    let root = tempfile::tempdir().unwrap();
    let config = properties(root.path(), &[&dir], &[]);
    let text = ok(gregor(&["storage", "info", "-c", config.to_str().unwrap()]));
    assert!(
        text.contains(&format!("Found metadata: {{cluster.id={cluster}, ")),
        "{text}"
    );
}
