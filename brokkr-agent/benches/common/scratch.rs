//! Scratch databases for the benches: a SQLite file in a temporary directory, or a
//! PostgreSQL database made by the tests' own `PgDatabase`
//! (`brokkr-server/tests/common/pg_database.rs`, on `BROKKR_TEST_DATABASE_URL`) and
//! dropped with it. Shared by the fleet and rollout benches (`#[path]` modules; each
//! includes `pg_database` at its root).

use tokio::runtime::Runtime;

use crate::Result;
use crate::pg_database::PgDatabase;

/// A scratch database, removed on drop.
pub struct Scratch {
    /// Where the server finds it.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL database, and the runtime that drops it.
    postgres: Option<(PgDatabase, tokio::runtime::Handle)>,
}

impl Scratch {
    /// A fresh database for `backend` (`sqlite` or `postgres`); the SQLite file is named
    /// after `prefix`. `None` (with a notice) when PostgreSQL cannot be reached.
    pub fn create(backend: &str, prefix: &str, runtime: &Runtime) -> Result<Option<Self>> {
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
        let Some(database) = runtime.block_on(PgDatabase::create()) else {
            println!("PostgreSQL: skipped, no scratch database could be made");
            return Ok(None);
        };
        Ok(Some(Self {
            url: database.url.clone(),
            _dir: None,
            postgres: Some((database, runtime.handle().clone())),
        }))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some((database, runtime)) = self.postgres.take() {
            runtime.block_on(database.drop_database());
        }
    }
}
