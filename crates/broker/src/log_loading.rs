//! Loading the partition logs while the broker already serves.
//!
//! After a crash (`kill -9`) every active segment is recovered, which takes
//! seconds for thousands of partitions. Instead of holding the listeners
//! closed meanwhile, [`crate::Broker::open_while_loading`] opens the
//! metadata, lists the logs on disk ([`gregor_storage::LogManager::open_deferred`])
//! and returns; a loader thread then loads the logs
//! (`num.recovery.threads.per.data.dir` threads per dir) and each log joins
//! the hosted partitions as soon as it is loaded:
//!
//! ```text
//!  loader threads ── log loaded ──▶ LogLoading::loaded(topic) ── dirty topics ──▶
//!  reconciler thread ──▶ Broker::reconcile (creates the topic's loaded partitions)
//! ```
//!
//! Until a partition is hosted, requests on it get Kafka's retriable answers
//! (NOT_LEADER_OR_FOLLOWER for data, LEADER_NOT_AVAILABLE in Metadata,
//! COORDINATOR_LOAD_IN_PROGRESS from a coordinator whose partition has not
//! loaded), and nothing (replica fetchers, coordinators) acts on its log.
//! A checkpoint written meanwhile keeps the files' entries for the logs not
//! loaded yet (see [`Broker::checkpoint`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::broker::Broker;

/// Test-only: when set, the load waits until the file this names exists,
/// so a test can act while the logs are loading without racing the load.
pub const TEST_GATE_ENV: &str = "GREGOR_TEST_LOG_LOAD_GATE";

/// The message (at `info`) that says every log is loaded and hosted: what
/// tests whose clients do not retry wait for after a start.
pub const LOADED_MESSAGE: &str = "every log loaded and online";

/// Where the background load stands. A broker opened the usual way
/// ([`Broker::open`]) starts with it done.
#[derive(Debug)]
pub struct LogLoading {
    state: Mutex<State>,
    changed: Condvar,
    /// `true` once every log is loaded, hosted, and the cleaner runs.
    done: tokio::sync::watch::Sender<bool>,
    /// The loader thread, joined by [`Broker::shutdown`].
    loader: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Debug, Default)]
struct State {
    /// Topics with logs loaded since the last reconcile took them.
    dirty: HashSet<Arc<str>>,
    /// Every log is loaded (or the load failed): one last reconcile is due.
    finished: bool,
}

impl LogLoading {
    pub(crate) fn new(done: bool) -> Self {
        Self {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            done: tokio::sync::watch::channel(done).0,
            loader: Mutex::new(None),
        }
    }

    /// Whether every log is loaded and hosted.
    pub fn is_done(&self) -> bool {
        *self.done.borrow()
    }

    /// Resolves once every log is loaded and hosted.
    pub async fn wait_done(&self) {
        let mut rx = self.done.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }

    /// The topics whose logs loaded since the last call: [`Broker::reconcile`]
    /// looks at them again even though their metadata did not change.
    pub(crate) fn take_dirty(&self) -> HashSet<Arc<str>> {
        std::mem::take(&mut self.state.lock().dirty)
    }

    fn loaded(&self, topic: &Arc<str>) {
        let mut state = self.state.lock();
        if !state.dirty.contains(topic) {
            state.dirty.insert(topic.clone());
        }
        self.changed.notify_one();
    }

    fn finish(&self) {
        self.state.lock().finished = true;
        self.changed.notify_one();
    }

    /// Waits for the loader thread (a shutdown during the load waits for it:
    /// the logs it loads must be closed with the others).
    pub(crate) fn join(&self) {
        let handle = self.loader.lock().take();
        if let Some(handle) = handle {
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
    }
}

/// Starts the loader thread of `broker`: loads `pending`, hosts each log as
/// it loads, then starts the cleaner and marks the load done. A failed load
/// is a fatal fault (the process halts, as a failed start exits).
pub(crate) fn start(
    broker: &Arc<Broker>,
    pending: gregor_storage::PendingLogs,
) -> Result<(), std::io::Error> {
    let b = broker.clone();
    let handle = std::thread::Builder::new()
        .name("gregor-log-loader".into())
        .spawn(move || run(&b, pending))?;
    *broker.log_loading.loader.lock() = Some(handle);
    Ok(())
}

fn run(broker: &Arc<Broker>, pending: gregor_storage::PendingLogs) {
    let started = Instant::now();
    let total = pending.len();
    tracing::info!(logs = total, "loading logs while serving");
    let loading = &broker.log_loading;
    if let Some(gate) = std::env::var_os(TEST_GATE_ENV) {
        let gate = std::path::PathBuf::from(gate);
        tracing::warn!(gate = %gate.display(), "{TEST_GATE_ENV} set: loading waits for the file");
        while !gate.exists() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let result = std::thread::scope(|s| {
        s.spawn(|| reconcile_while_loading(broker));
        let r = broker
            .logs
            .load_pending(pending, &|tp| loading.loaded(&tp.topic));
        loading.finish();
        r
    });
    if let Err(e) = result {
        broker.fatal_fault(format!("loading the partition logs failed: {e}"));
        return;
    }
    if let Err(e) = broker.start_cleaner() {
        broker.fatal_fault(format!("starting the log cleaner failed: {e}"));
        return;
    }
    // The load's temporaries (the list of logs, paths, checkpoint maps) are
    // freed by now: their pages go back to the system (see crate::malloc).
    crate::malloc::release_free_memory();
    tracing::info!(
        logs = total,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "{LOADED_MESSAGE}"
    );
    loading.done.send_replace(true);
}

/// Hosts loaded logs until the load is finished, then once more for the last
/// ones. Each reconcile walks the image, so they are spaced by a multiple of
/// the last one's duration: logs that load meanwhile are hosted together.
fn reconcile_while_loading(broker: &Broker) {
    let loading = &broker.log_loading;
    loop {
        let finished = {
            let mut state = loading.state.lock();
            while state.dirty.is_empty() && !state.finished {
                loading.changed.wait(&mut state);
            }
            state.finished
        };
        let t = Instant::now();
        if let Err(e) = broker.reconcile() {
            tracing::error!(error = %e, "hosting loaded logs failed");
        }
        if finished {
            return;
        }
        let pause = (t.elapsed() * 3).clamp(Duration::from_millis(5), Duration::from_millis(200));
        std::thread::sleep(pause);
    }
}
