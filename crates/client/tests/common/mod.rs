//! Harness for the client's integration tests: a real `gregor server` process
//! on `127.0.0.1:0` with its own temporary log dir, killed on drop.
//!
//! The binary is `$GREGOR_BIN`, or `target/debug/gregor` of this workspace
//! (`scripts/test.sh` builds it before `cargo test --workspace`). A test
//! cannot build it itself, so a missing binary is a failure with a message
//! saying how to build it.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gregor_client::ClientConfig;

pub const START_DEADLINE: Duration = Duration::from_secs(30);

pub fn gregor_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("GREGOR_BIN") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/gregor");
    assert!(
        p.exists(),
        "the broker binary {} is missing: run `cargo build -p gregor-cli` first \
         (scripts/test.sh does), or set GREGOR_BIN",
        p.display()
    );
    p
}

pub struct Broker {
    root: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    pub fn start_with(overrides: &[&str]) -> Broker {
        let root = tempfile::Builder::new()
            .prefix("gregor-client-it-")
            .tempdir()
            .expect("temp dir");
        let stderr = std::fs::File::create(root.path().join("stderr.log")).expect("stderr file");
        let mut cmd = Command::new(gregor_bin());
        cmd.arg("server")
            .arg("--override")
            .arg("listeners=PLAINTEXT://127.0.0.1:0")
            .arg("--override")
            .arg(format!("log.dirs={}", root.path().join("data").display()));
        for o in overrides {
            cmd.arg("--override").arg(o);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawning gregor");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            for _ in lines {}
        });
        let mut b = Broker {
            root,
            port: 0,
            child: Some(child),
        };
        let line = match rx.recv_timeout(START_DEADLINE) {
            Ok(Some(Ok(line))) => line,
            other => panic!("broker did not start ({other:?})\n{}", b.logs()),
        };
        b.port = line
            .strip_prefix("gregor: listening on PLAINTEXT://127.0.0.1:")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected listening line {line:?}"));
        b
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A config with bootstrap.servers set and short test-friendly timeouts.
    pub fn config(&self) -> ClientConfig {
        self.config_for(&self.bootstrap())
    }

    pub fn config_for(&self, bootstrap: &str) -> ClientConfig {
        ClientConfig::from_map([
            ("bootstrap.servers", bootstrap),
            ("client.id", "gregor-client-it"),
            ("request.timeout.ms", "10000"),
        ])
        .expect("test config")
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.root.path().join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() && std::env::var_os("GREGOR_IT_LOGS").is_some() {
            eprintln!("{}", self.logs());
        }
    }
}

/// Polls an async condition until it holds or `timeout` passes.
pub async fn wait_until<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
