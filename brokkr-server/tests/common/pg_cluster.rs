//! A PostgreSQL cluster of the test's own, for tests that stop and start the database.
//!
//! `initdb` creates it in a temporary directory; it listens on a free loopback port
//! (and a socket in that directory), trusts local connections and skips `fsync`. The
//! shared cluster at `BROKKR_TEST_DATABASE_URL` is never stopped. PostgreSQL refuses to
//! run as root, so as root the commands run as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A throwaway cluster, stopped (immediately) and deleted when dropped.
pub struct PgCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    as_postgres: bool,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// A URL of its `postgres` database.
    pub url: String,
}

impl PgCluster {
    /// Creates the cluster (not started), or `None` after a notice when PostgreSQL's
    /// server programs are not installed; under `CI=true` that is a failure.
    pub fn init() -> Option<PgCluster> {
        let Some(bin) = server_bin_dir() else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("PostgreSQL's server programs (initdb, pg_ctl) are not installed");
            }
            eprintln!("skipping: PostgreSQL's initdb and pg_ctl are not installed");
            return None;
        };
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let as_postgres = is_root();
        if as_postgres {
            run(Command::new("chown").arg("postgres:").arg(dir.path()));
        }
        let port = free_port();
        let cluster = PgCluster {
            bin,
            dir,
            as_postgres,
            port,
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        };
        run(cluster
            .command("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(cluster.data()));
        Some(cluster)
    }

    /// Starts it and waits until it accepts connections.
    pub fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        run(self
            .command("pg_ctl")
            .args(["-w", "-t", "60", "-o", &options, "-l"])
            .arg(self.dir.path().join("server.log"))
            .arg("-D")
            .arg(self.data())
            .arg("start"));
    }

    /// Stops it, closing every connection (`-m fast`), and waits until it is down.
    pub fn stop(&self) {
        run(self
            .command("pg_ctl")
            .args(["-w", "-t", "60", "-m", "fast", "-D"])
            .arg(self.data())
            .arg("stop"));
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-w", "-t", "30", "-m", "immediate", "-D"])
            .arg(self.data())
            .arg("stop")
            .output();
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb`, else `pg_config
/// --bindir`.
fn server_bin_dir() -> Option<PathBuf> {
    let installed = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|versions| {
            versions
                .filter_map(Result::ok)
                .filter_map(|v| Some((v.file_name().to_str()?.parse::<u32>().ok()?, v.path())))
                .max_by_key(|(version, _)| *version)
                .map(|(_, path)| path.join("bin"))
        });
    let from_pg_config = || {
        let out = Command::new("pg_config").arg("--bindir").output().ok()?;
        Some(PathBuf::from(String::from_utf8(out.stdout).ok()?.trim()))
    };
    installed
        .or_else(from_pg_config)
        .filter(|bin| has(bin, "initdb") && has(bin, "pg_ctl"))
}

fn has(bin: &Path, program: &str) -> bool {
    bin.join(program).is_file()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("its address").port()
}

fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|err| panic!("run {command:?}: {err}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
