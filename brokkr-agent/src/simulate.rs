//! A fleet simulator: many agents in one process against a real broker, for capacity
//! planning and scale tests.
//!
//! Each simulated agent is a real [`Agent`], the loop a cluster runs, with its own key
//! and its own simulated cluster ([`MemoryApplier`]). It talks to the broker over real
//! HTTP exactly as a cluster's agent does: readiness, key check, heartbeats, target-state
//! long polls, events and health reports. Only the cluster is simulated. The agents share
//! one HTTP client ([`BrokerClients`]): its pool gives each request in flight its own
//! connection, so each agent holds one connection for its long poll and takes another
//! from the pool for a heartbeat, about one socket per agent in all.
//!
//! Agents start on a ramp (`ramp_per_sec`), so a large fleet does not stampede the
//! broker. Every reconcile outcome reaches a shared record through the agent's
//! [`Observer`](crate::agent::Observer); a [`Summary`] says how many agents are up to
//! date, how many applies happened, their lag (from the object's `created_at`, on the
//! broker's clock, to the apply, on this host's clock), the calls made by kind and
//! outcome, and this process's memory and open files.
//!
//! ```no_run
//! # async fn example() -> Result<(), brokkr_agent::simulate::Error> {
//! use brokkr_agent::config::Secret;
//! use brokkr_agent::simulate::{Options, run};
//!
//! let options = Options {
//!     broker_url: "http://127.0.0.1:3000".into(),
//!     agents: 100,
//!     admin_key: Some(Secret::new("brokkr_...")),
//!     duration: Some(std::time::Duration::from_secs(60)),
//!     ..Options::default()
//! };
//! let summary = run(options, std::future::pending(), |s| eprintln!("{}", s.progress_line())).await?;
//! println!("{summary}");
//! # Ok(())
//! # }
//! ```

mod keys;
mod record;
mod summary;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brokkr_core::Capabilities;
use brokkr_core::testing::MemoryApplier;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::agent::{Agent, Readiness, StaticCapabilities};
use crate::broker::{BrokerClients, BrokerError};
use crate::config::{AgentSection, Secret};

pub use keys::{Registered, read_keys_file, register};
pub use record::Applied;
pub use summary::{AgentCounts, Latency, ProcessStats, Summary, open_files_limit};

/// Why a simulation could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Fewer keys than agents, and no admin key to register the others.
    #[error(
        "{wanted} agents asked for, {have} keys given, and no admin key to register the others"
    )]
    NotEnoughKeys {
        /// Agents asked for.
        wanted: usize,
        /// Keys given.
        have: usize,
    },
    /// The keys file could not be read.
    #[error("cannot read the keys file {path}")]
    KeysFile {
        /// Its path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An admin call made to register agents failed.
    #[error("registering agents: {what} failed: {message}")]
    Register {
        /// What was being done.
        what: String,
        /// The error or the broker's answer.
        message: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Client(#[source] BrokerError),
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Options {
    /// The broker, e.g. `http://127.0.0.1:3000`.
    pub broker_url: String,
    /// How many agents.
    pub agents: usize,
    /// Keys of agents registered elsewhere, used first (one agent each).
    pub keys: Vec<Secret>,
    /// An admin key, to register the agents `keys` does not cover (see [`register`]).
    pub admin_key: Option<Secret>,
    /// Registered agents are named `{prefix}-{i}`, in cluster `{prefix}-{i}`.
    pub prefix: String,
    /// Labels set on registered agents, and reported with every agent's heartbeats,
    /// so that placement policies can pick the simulated fleet.
    pub labels: BTreeMap<String, String>,
    /// Agents started per second (0: all at once).
    pub ramp_per_sec: u32,
    /// Every agent's settings (periods, backoff, concurrency); `broker_url`, `pak` and
    /// `labels` are set per agent from the fields above.
    pub agent: AgentSection,
    /// How long [`run`] runs; `None`: until its shutdown future completes.
    pub duration: Option<Duration>,
    /// How often [`run`] reports progress.
    pub report_every: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            broker_url: AgentSection::default().broker_url,
            agents: 100,
            keys: Vec::new(),
            admin_key: None,
            prefix: "sim".into(),
            labels: BTreeMap::new(),
            ramp_per_sec: 200,
            agent: AgentSection::default(),
            duration: None,
            report_every: Duration::from_secs(10),
        }
    }
}

/// What each simulated cluster reports with its heartbeats.
fn simulated_capabilities() -> Capabilities {
    Capabilities {
        kubernetes_version: Some("v1.33.0".into()),
        node_count: Some(3),
        allocatable_cpu_millis: Some(12_000),
        allocatable_memory_bytes: Some(48 << 30),
        ..Capabilities::default()
    }
}

/// The keys for `options.agents` agents: `options.keys` first, then agents registered
/// with `options.admin_key` (named from `options.keys.len()` on).
pub async fn obtain_keys(options: &Options) -> Result<Vec<Secret>, Error> {
    let mut keys: Vec<Secret> = options.keys.iter().take(options.agents).cloned().collect();
    if keys.len() < options.agents {
        let Some(admin) = &options.admin_key else {
            return Err(Error::NotEnoughKeys {
                wanted: options.agents,
                have: keys.len(),
            });
        };
        let started = Instant::now();
        let indices = keys.len()..options.agents;
        let count = indices.len();
        tracing::info!(agents = count, prefix = %options.prefix, "registering agents");
        let registered = register(
            &options.broker_url,
            admin,
            &options.prefix,
            indices,
            &options.labels,
        )
        .await?;
        tracing::info!(agents = count, elapsed = ?started.elapsed(), "registered");
        keys.extend(registered.into_iter().map(|r| r.key));
    }
    Ok(keys)
}

/// One started agent, as the simulator follows it.
struct Slot {
    readiness: Readiness,
    stopped: AtomicBool,
    cluster: Arc<MemoryApplier>,
}

/// A running simulated fleet. Dropping it stops the agents (without waiting).
pub struct Simulator {
    broker_url: String,
    requested: usize,
    clients: BrokerClients,
    recorder: Arc<record::Recorder>,
    slots: Arc<Mutex<Vec<Arc<Slot>>>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    launcher: Mutex<Option<JoinHandle<()>>>,
    stop: watch::Sender<bool>,
    grace: Duration,
    started: Instant,
    last_report: Mutex<(Instant, u64)>,
}

impl Simulator {
    /// Starts one agent per key, `options.ramp_per_sec` a second, in the current Tokio
    /// runtime.
    pub fn start(options: &Options, keys: Vec<Secret>) -> Result<Self, Error> {
        let clients = BrokerClients::new(&options.broker_url).map_err(Error::Client)?;
        let recorder = Arc::new(record::Recorder::default());
        let slots = Arc::new(Mutex::new(Vec::with_capacity(keys.len())));
        let tasks = Arc::new(Mutex::new(Vec::with_capacity(keys.len())));
        let (stop, stopped) = watch::channel(false);
        let requested = keys.len();
        let launcher = tokio::spawn(launch(
            Launch {
                options: options.clone(),
                clients: clients.clone(),
                recorder: Arc::clone(&recorder),
                slots: Arc::clone(&slots),
                tasks: Arc::clone(&tasks),
            },
            keys,
            stopped,
        ));
        Ok(Self {
            broker_url: options.broker_url.clone(),
            requested,
            clients,
            recorder,
            slots,
            tasks,
            launcher: Mutex::new(Some(launcher)),
            stop,
            grace: options.agent.shutdown_grace(),
            started: Instant::now(),
            last_report: Mutex::new((Instant::now(), 0)),
        })
    }

    /// A channel receiving every successful apply from now on.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Applied> {
        self.recorder.subscribe()
    }

    /// Where the fleet stands. `recent_lag` and `recent_requests_per_sec` cover the time
    /// since the previous call.
    pub fn summary(&self) -> Summary {
        let tally = self.recorder.tally();
        let agents = self.counts();
        let mut summary = Summary::new(
            tally,
            agents,
            self.clients.calls(),
            self.started.elapsed(),
            &self.broker_url,
        );
        let mut last = self.last_report.lock().unwrap_or_else(|e| e.into_inner());
        let seconds = last.0.elapsed().as_secs_f64();
        if seconds > 0.0 {
            summary.recent_requests_per_sec =
                summary.requests_total.saturating_sub(last.1) as f64 / seconds;
        }
        *last = (Instant::now(), summary.requests_total);
        summary
    }

    /// The simulated cluster of agent `index` (0-based, in start order), once started:
    /// a test or bench can make it refuse a kind or report a health of its choosing.
    pub fn cluster(&self, index: usize) -> Option<Arc<MemoryApplier>> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.get(index).map(|slot| Arc::clone(&slot.cluster))
    }

    fn counts(&self) -> AgentCounts {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let stopped = slots
            .iter()
            .filter(|s| s.stopped.load(Ordering::Relaxed))
            .count();
        let ready = slots
            .iter()
            .filter(|s| !s.stopped.load(Ordering::Relaxed) && s.readiness.is_ready())
            .count();
        AgentCounts {
            requested: self.requested,
            started: slots.len(),
            ready,
            stopped,
        }
    }

    /// Stops every agent (each finishes its reconcile and sends pending events within
    /// its shutdown grace period) and returns the final summary.
    pub async fn stop(self) -> Summary {
        self.stop.send_replace(true);
        let launcher = self
            .launcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(launcher) = launcher {
            let _ = launcher.await;
        }
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        let deadline = tokio::time::Instant::now() + self.grace + Duration::from_secs(5);
        for task in tasks {
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                tracing::warn!("simulated agents did not stop within their grace period");
                break;
            }
        }
        self.summary()
    }
}

/// What the launcher needs to start agents.
struct Launch {
    options: Options,
    clients: BrokerClients,
    recorder: Arc<record::Recorder>,
    slots: Arc<Mutex<Vec<Arc<Slot>>>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

/// How often the launcher wakes to start the agents that are due.
const LAUNCH_TICK: Duration = Duration::from_millis(10);

/// Starts one agent per key on the ramp, until all are started or `stop` is set.
async fn launch(launch: Launch, keys: Vec<Secret>, mut stop: watch::Receiver<bool>) {
    let capabilities = Arc::new(StaticCapabilities(simulated_capabilities()));
    let total = keys.len();
    let ramp = f64::from(launch.options.ramp_per_sec);
    let started = Instant::now();
    let mut keys = keys.into_iter().enumerate();
    let mut launched = 0;
    let mut tick = tokio::time::interval(LAUNCH_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while launched < total {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        let due = if ramp > 0.0 {
            ((started.elapsed().as_secs_f64() * ramp) as usize + 1).min(total)
        } else {
            total
        };
        for (index, key) in keys.by_ref().take(due - launched) {
            start_agent(&launch, index, key, &capabilities, stop.clone());
            launched += 1;
        }
    }
    tracing::info!(agents = total, elapsed = ?started.elapsed(), "every simulated agent started");
}

fn start_agent(
    launch: &Launch,
    index: usize,
    key: Secret,
    capabilities: &Arc<StaticCapabilities>,
    mut stop: watch::Receiver<bool>,
) {
    let config = AgentSection {
        broker_url: launch.options.broker_url.clone(),
        pak: key.clone(),
        labels: launch.options.labels.clone(),
        ..launch.options.agent.clone()
    };
    let cluster = Arc::new(MemoryApplier::new());
    let agent = Agent::new(
        config,
        launch.clients.client(key),
        Arc::clone(&cluster) as _,
        Arc::clone(capabilities) as _,
    )
    .with_observer(launch.recorder.start_agent(index));
    // Slots are pushed in start order, so a slot's position is its agent's index.
    let slot = Arc::new(Slot {
        readiness: agent.readiness(),
        stopped: AtomicBool::new(false),
        cluster,
    });
    launch
        .slots
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Arc::clone(&slot));
    let task = tokio::spawn(async move {
        let result = agent
            .run(async move {
                // Also completes when the simulator is dropped.
                let _ = stop.wait_for(|stop| *stop).await;
            })
            .await;
        if let Err(err) = result {
            tracing::warn!(agent = index, error = %err, "simulated agent stopped");
            slot.stopped.store(true, Ordering::Relaxed);
        }
    });
    launch
        .tasks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(task);
}

/// Registers or reads the keys, runs the fleet until `options.duration` passes or
/// `shutdown` completes, calls `progress` every `options.report_every`, stops the
/// agents and returns the final summary.
pub async fn run(
    options: Options,
    shutdown: impl Future<Output = ()>,
    mut progress: impl FnMut(&Summary),
) -> Result<Summary, Error> {
    // One socket per agent, up to a fifth more kept from bursts (the pool keeps idle
    // connections for 90 s), and some slack.
    let needed = options.agents as u64 + options.agents as u64 / 4 + 64;
    if let Some(limit) = open_files_limit()
        && limit < needed
    {
        tracing::warn!(
            limit,
            needed,
            "the open-files limit is below what {} agents need: raise it (ulimit -n) or expect connection errors",
            options.agents
        );
    }
    let keys = obtain_keys(&options).await?;
    let simulator = Simulator::start(&options, keys)?;
    let every = options.report_every.max(Duration::from_millis(100));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let end = async {
        match options.duration {
            Some(duration) => tokio::time::sleep(duration).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(shutdown, end);
    loop {
        tokio::select! {
            _ = ticker.tick() => progress(&simulator.summary()),
            () = &mut end => break,
            () = &mut shutdown => break,
        }
    }
    Ok(simulator.stop().await)
}
