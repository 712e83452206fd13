//! Starting the real `brokkr-server` binary: what it prints, what it stores, and how it
//! fails.
//!
//! - A start that cannot bind its port fails naming the address and stores no admin
//!   key; the next start prints one on stdout; a start after that prints none and says
//!   on stderr how to get one (`brokkr-server rotate admin`).
//! - A database that cannot be opened fails within a few seconds with one message that
//!   names what was tried (host and port, never the password; or the SQLite file) and
//!   what to do.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use brokkr_core::{KeyOwner, Store};
use brokkr_store::SqlStore;
use common::PgDatabase;

/// Longest a failing start may take: the issue asks for "a few seconds".
const FAIL_WITHIN: Duration = Duration::from_secs(5);

/// `brokkr-server serve` with `database_url`, run in `dir`, no configuration file.
fn serve(dir: &Path, database_url: &str, listen: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_brokkr-server"));
    command
        .args(["serve", "--listen", listen])
        .current_dir(dir)
        .env("BROKKR__DATABASE__URL", database_url)
        .env("BROKKR__LOG__FILTER", "info")
        .env("BROKKR__LOG__FORMAT", "text")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// How a start that should fail ended.
struct Failed {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Runs `command` to its end, killing it if it outlives `FAIL_WITHIN` twice over.
fn run_to_failure(mut command: Command) -> Failed {
    let started = Instant::now();
    let mut child = command.spawn().expect("start brokkr-server");
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll brokkr-server") {
            break status;
        }
        if started.elapsed() > FAIL_WITHIN * 2 {
            child.kill().expect("kill brokkr-server");
            panic!("brokkr-server still running after {:?}", started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = started.elapsed();
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    assert!(!status.success(), "a failing start exits with failure");
    Failed {
        status,
        stdout,
        stderr,
        took,
    }
}

/// A server started in the background, its output read line by line.
struct Running {
    child: Child,
    lines: Receiver<(&'static str, String)>,
    stdout: Vec<String>,
    stderr: Vec<String>,
}

impl Running {
    fn start(mut command: Command) -> Self {
        let mut child = command.spawn().expect("start brokkr-server");
        let (send, lines) = channel();
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        for (stream, reader) in [
            ("stdout", Box::new(out) as Box<dyn Read + Send>),
            ("stderr", Box::new(err)),
        ] {
            let send = send.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(reader).lines().map_while(Result::ok) {
                    if send.send((stream, line)).is_err() {
                        break;
                    }
                }
            });
        }
        Self {
            child,
            lines,
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    /// Reads output until the log says the server listens.
    fn until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Ok((stream, line)) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            let listening = stream == "stderr" && line.contains("listening");
            match stream {
                "stdout" => self.stdout.push(line),
                _ => self.stderr.push(line),
            }
            if listening {
                return;
            }
        }
        panic!(
            "no \"listening\" within 30 s; stdout {:?}, stderr {:?}",
            self.stdout, self.stderr
        );
    }

    /// Stops the server and reads what it printed to the end: the log line that says
    /// it listens can arrive before a line printed on the other stream earlier.
    fn stop(&mut self) {
        self.child.kill().expect("stop brokkr-server");
        self.child.wait().expect("reap brokkr-server");
        // Both readers end at end of file, which drops the last sender.
        while let Ok((stream, line)) = self.lines.recv_timeout(Duration::from_secs(10)) {
            match stream {
                "stdout" => self.stdout.push(line),
                _ => self.stderr.push(line),
            }
        }
    }
}

async fn admin_keys(url: &str) -> usize {
    let store = SqlStore::connect(url).await.expect("open the SQLite store");
    store
        .active_api_keys(KeyOwner::Admin)
        .await
        .expect("read admin keys")
        .len()
}

#[tokio::test]
async fn a_busy_port_stores_no_admin_key_and_the_next_start_prints_one() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("brokkr.db").display()
    );
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let busy_addr = busy.local_addr().expect("its address").to_string();

    let failed = run_to_failure(serve(dir.path(), &url, &busy_addr));
    assert!(
        failed
            .stderr
            .contains(&format!("cannot listen on {busy_addr}")),
        "{:?}: {}",
        failed.status,
        failed.stderr
    );
    assert!(
        failed.stdout.is_empty(),
        "nothing on stdout: {}",
        failed.stdout
    );
    assert_eq!(
        admin_keys(&url).await,
        0,
        "no key stored by a start that failed"
    );
    drop(busy);

    let mut first = Running::start(serve(dir.path(), &url, "127.0.0.1:0"));
    first.until_listening();
    first.stop();
    let printed: Vec<_> = first
        .stdout
        .iter()
        .filter(|line| line.starts_with("admin key (shown once): brokkr_"))
        .collect();
    assert_eq!(printed.len(), 1, "stdout {:?}", first.stdout);
    assert_eq!(admin_keys(&url).await, 1);

    let mut second = Running::start(serve(dir.path(), &url, "127.0.0.1:0"));
    second.until_listening();
    second.stop();
    assert!(second.stdout.is_empty(), "no key: {:?}", second.stdout);
    assert!(
        second
            .stderr
            .iter()
            .any(|line| line.contains("brokkr-server rotate admin")),
        "the hint: {:?}",
        second.stderr
    );
    assert_eq!(admin_keys(&url).await, 1, "the existing key is kept");
}

/// Asserts `failed` took at most [`FAIL_WITHIN`] and printed one `error:` line that
/// holds each of `expected` exactly once.
fn assert_told_once(failed: &Failed, expected: &[&str]) {
    assert!(failed.took <= FAIL_WITHIN, "took {:?}", failed.took);
    let errors: Vec<_> = failed
        .stderr
        .lines()
        .filter(|line| line.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {}", failed.stderr);
    for text in expected {
        assert_eq!(
            errors[0].matches(text).count(),
            1,
            "{text:?} once in {:?}",
            errors[0]
        );
    }
}

#[test]
fn an_unreachable_postgres_is_named_within_seconds() {
    let dir = tempfile::tempdir().expect("temporary directory");
    // A loopback port nobody listens on: bound, then released.
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind a port")
        .local_addr()
        .expect("its address")
        .port();
    let url = format!("postgres://brokkr:s3cret-password@127.0.0.1:{port}/brokkr");
    let failed = run_to_failure(serve(dir.path(), &url, "127.0.0.1:0"));
    assert_told_once(
        &failed,
        &[
            &format!("PostgreSQL at 127.0.0.1:{port}"),
            "is PostgreSQL running",
            "check database.url",
        ],
    );
    assert!(!failed.stderr.contains("s3cret"), "{}", failed.stderr);
    assert!(
        !failed.stderr.contains("pool timed out"),
        "{}",
        failed.stderr
    );
}

#[tokio::test]
async fn a_missing_postgres_database_says_how_to_create_it() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    let missing = format!("{}_missing", db.name);
    let url = db.url.replace(&db.name, &missing);
    let dir = tempfile::tempdir().expect("temporary directory");
    let failed = run_to_failure(serve(dir.path(), &url, "127.0.0.1:0"));
    assert_told_once(
        &failed,
        &[
            &format!("database \"{missing}\" does not exist"),
            "createdb ",
        ],
    );
    db.drop_database().await;
}

#[test]
fn a_sqlite_file_that_cannot_be_opened_is_named() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("absent.db");
    let failed = run_to_failure(serve(
        dir.path(),
        &format!("sqlite://{}", file.display()),
        "127.0.0.1:0",
    ));
    assert_told_once(&failed, &[&file.display().to_string(), "add ?mode=rwc"]);
    assert!(!file.exists(), "nothing created without mode=rwc");

    // Relative to the working directory, named absolutely.
    let failed = run_to_failure(serve(dir.path(), "sqlite://relative.db", "127.0.0.1:0"));
    assert_told_once(
        &failed,
        &[&dir.path().join("relative.db").display().to_string()],
    );

    let missing_dir = dir.path().join("no-such-directory");
    let file = missing_dir.join("brokkr.db");
    let failed = run_to_failure(serve(
        dir.path(),
        &format!("sqlite://{}?mode=rwc", file.display()),
        "127.0.0.1:0",
    ));
    assert_told_once(
        &failed,
        &[
            &file.display().to_string(),
            &format!("the directory {} does not exist", missing_dir.display()),
        ],
    );
}
