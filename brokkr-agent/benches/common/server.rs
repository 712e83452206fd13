//! The server under a benchmark, in a process of its own (the bench's own binary, run
//! again with `BROKKR_BENCH_ROLE=server`), so that its memory and open files are its
//! alone. It serves through the reference server's bind-and-run path ([`Server::bind`],
//! [`Server::run`]) over the store named by `BROKKR__DATABASE__URL`, on 127.0.0.1, and
//! stops when its standard input closes; it can also be killed (as a crash would) and
//! started again on the same database and address, where the admin key exists already.
//! Shared by the fleet and rollout benches (`#[path]` modules).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use brokkr_agent::simulate::ProcessStats;
use brokkr_server::serve::Server;

use crate::Result;

/// Set to `server` in the child that serves.
pub const ROLE: &str = "BROKKR_BENCH_ROLE";
/// The address the child listens on (`127.0.0.1:0` when unset).
const LISTEN: &str = "BROKKR_BENCH_LISTEN";
/// Longest wait for the server to print its address (migrations run).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest wait for the server to stop after its input closed.
const STOP_TIMEOUT: Duration = Duration::from_secs(40);

/// Serves from the configuration in the environment until standard input closes or a
/// signal arrives; prints `listening <addr>` and `admin <key>` (`admin -` when the
/// database had one) on stdout first.
pub fn serve() -> Result {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = brokkr_server::config::Config::load(None)?;
    config.server.listen = std::env::var(LISTEN).unwrap_or_else(|_| "127.0.0.1:0".into());
    brokkr_server::cli::init_logging(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut server = Server::bind(config, Default::default()).await?;
        println!("listening {}", server.local_addr());
        match server.take_admin_key() {
            Some(key) => println!("admin {}", key.expose()),
            None => println!("admin -"),
        }
        let input_closed = tokio::task::spawn_blocking(|| {
            let mut buf = [0u8; 64];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        });
        server
            .run(async move {
                tokio::select! {
                    _ = input_closed => {}
                    () = brokkr_server::cli::shutdown_signal() => {}
                }
            })
            .await?;
        Ok(())
    })
}

/// The server child; killed on drop if it has not stopped.
pub struct ServerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The admin key it printed; empty when the database had one already.
    pub admin: String,
    /// When the process was spawned, and when it printed its address.
    pub spawned: Instant,
    pub listening: Instant,
}

impl ServerProcess {
    /// Starts a server on `database_url`, on `listen` (a fresh port for `None`), logging
    /// to this process's standard error what `log_filter` lets through.
    pub fn spawn(
        database_url: &str,
        max_connections: Option<u32>,
        listen: Option<&str>,
        log_filter: &str,
    ) -> Result<Self> {
        let mut command = Command::new(std::env::current_exe()?);
        command
            .env(ROLE, "server")
            .env_remove("DATABASE_URL")
            .env("BROKKR__DATABASE__URL", database_url)
            .env("BROKKR__SERVER__SHUTDOWN_GRACE_SECS", "5")
            .env("BROKKR__LOG__FILTER", log_filter)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(max) = max_connections {
            command.env("BROKKR__DATABASE__MAX_CONNECTIONS", max.to_string());
        }
        if let Some(listen) = listen {
            command.env(LISTEN, listen);
        }
        let spawned = Instant::now();
        let mut child = command.spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        // A thread reads every line, so the child never blocks on a full pipe.
        let (tx, lines) = std_mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout)
                .lines()
                .map_while(std::io::Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let mut process = ServerProcess {
            child,
            stdin,
            url: String::new(),
            admin: String::new(),
            spawned,
            listening: spawned,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let mut admin_seen = false;
        while process.url.is_empty() || !admin_seen {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines
                .recv_timeout(left)
                .map_err(|_| "the server did not start (see its log above)")?;
            if let Some(addr) = line.strip_prefix("listening ") {
                process.url = format!("http://{addr}");
                process.listening = Instant::now();
            } else if let Some(key) = line.strip_prefix("admin ") {
                admin_seen = true;
                if key != "-" {
                    process.admin = key.to_owned();
                }
            }
        }
        Ok(process)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `127.0.0.1:<port>`, to start again on the same address.
    pub fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    pub fn stats(&self) -> ProcessStats {
        ProcessStats::read(Some(self.child.id()))
    }

    /// Kills it at once (SIGKILL), as a crash would: nothing is drained.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Closes its input and waits for it to stop, killing it after `STOP_TIMEOUT`.
    pub fn stop(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return,
                Ok(Some(status)) => {
                    eprintln!("  the server stopped with {status}");
                    return;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    eprintln!("  the server did not stop within {STOP_TIMEOUT:?}; killing it");
                    return;
                }
            }
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The log filter named by the environment variable `var`, `error` when unset.
pub fn log_filter(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| "error".into())
}

/// `VmHWM`, `VmRSS` and open files of a process.
pub fn memory(stats: &ProcessStats) -> String {
    format!(
        "VmHWM {} MiB, VmRSS {} MiB, {} open files",
        stats.peak_rss_kib / 1024,
        stats.rss_kib / 1024,
        stats.open_files
    )
}
