//! Scratch databases for the benches: a SQLite file in a temporary directory, or a
//! PostgreSQL database on `BROKKR_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) created and dropped with `psql`.
//! Shared by the fleet and rollout benches (`#[path]` modules).

use std::process::Command;

use crate::Result;

/// A scratch database: a SQLite file in a temporary directory, or a PostgreSQL
/// database created with `psql` and dropped on drop.
pub struct Scratch {
    /// Where the server finds it.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl Scratch {
    /// A fresh database for `backend` (`sqlite` or `postgres`), named after `prefix`;
    /// `None` (with a notice) when PostgreSQL cannot be reached.
    pub fn create(backend: &str, prefix: &str) -> Result<Option<Self>> {
        if backend == "sqlite" {
            let dir = tempfile::tempdir()?;
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join(format!("{prefix}.db")).display()
            );
            return Ok(Some(Self {
                url,
                _dir: Some(dir),
                postgres: None,
            }));
        }
        let base = std::env::var("BROKKR_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        if let Err(err) = psql(&base, &format!("CREATE DATABASE {name}")) {
            println!("PostgreSQL: skipped, cannot create a scratch database on {base}: {err}");
            return Ok(None);
        }
        let url = match base.rfind('/') {
            Some(i) if i > base.find("://").map_or(0, |s| s + 2) => {
                format!("{}/{name}", &base[..i])
            }
            _ => format!("{base}/{name}"),
        };
        Ok(Some(Self {
            url,
            _dir: None,
            postgres: Some((base, name)),
        }))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some((base, name)) = &self.postgres
            && let Err(err) = psql(
                base,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
        {
            eprintln!("could not drop the scratch database {name}: {err}");
        }
    }
}

/// Runs one SQL statement on `url` with `psql`, bounded by a connect timeout.
fn psql(url: &str, sql: &str) -> Result {
    let output = Command::new("psql")
        .env("PGCONNECT_TIMEOUT", "10")
        .args([url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr)
            .trim()
            .to_owned()
            .into())
    }
}
