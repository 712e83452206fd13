//! Fixtures shared by the store's integration tests: a fresh SQLite file or a fresh
//! PostgreSQL database per test.

#![allow(dead_code)] // each test binary uses a different subset

use brokkr_core::Store;
use brokkr_core::testing::StoreFixture;
use brokkr_store::{SqlStore, StoreConfig};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

/// How many migrations `name` and those after it are: what `Migrator::down` takes to
/// undo it, whatever migrations are added later.
pub fn migrations_from(name: &str) -> u32 {
    use brokkr_store::MigratorTrait;
    let all = brokkr_store::Migrator::get_migration_files();
    let index = all
        .iter()
        .position(|m| m.name() == name)
        .unwrap_or_else(|| panic!("no migration {name}"));
    u32::try_from(all.len() - index).expect("a few migrations")
}

/// Where PostgreSQL test databases are created from.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A store on its own SQLite file, deleted with the fixture.
pub struct SqliteFixture {
    pub store: SqlStore,
    pub dir: tempfile::TempDir,
}

impl SqliteFixture {
    pub fn url(&self) -> String {
        sqlite_url(&self.dir)
    }
}

pub fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("brokkr.db").display()
    )
}

impl StoreFixture for SqliteFixture {
    fn store(&self) -> &dyn Store {
        &self.store
    }

    async fn teardown(self) {
        drop(self.store);
        drop(self.dir);
    }
}

pub async fn sqlite() -> Option<SqliteFixture> {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let store = SqlStore::connect(&sqlite_url(&dir))
        .await
        .expect("open a SQLite store");
    Some(SqliteFixture { store, dir })
}

/// A fresh PostgreSQL database, dropped (`WITH (FORCE)`) at teardown.
pub struct PgDatabase {
    admin: DatabaseConnection,
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    /// Creates the database, or returns `None` (after a notice) when PostgreSQL is not
    /// reachable. Under `CI=true` an unreachable PostgreSQL is a failure.
    pub async fn create() -> Option<PgDatabase> {
        let base =
            std::env::var("BROKKR_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned());
        let admin = match Database::connect(base.as_str()).await {
            Ok(admin) => admin,
            Err(err) => {
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("PostgreSQL at {base} is unreachable under CI=true: {err}");
                }
                eprintln!("skipping: PostgreSQL at {base} is unreachable ({err})");
                return None;
            }
        };
        let name = format!("brokkr_test_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create a test database");
        let url = with_database(&base, &name);
        Some(PgDatabase { admin, name, url })
    }

    pub async fn drop_database(self) {
        self.admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .expect("drop the test database");
        let _ = self.admin.close().await;
    }
}

/// `base` with its database name replaced by `name`.
fn with_database(base: &str, name: &str) -> String {
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let (head, rest) = base.split_at(scheme_end);
    let (authority, path_and_query) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let query = path_and_query
        .find('?')
        .map_or("", |i| &path_and_query[i..]);
    format!("{head}{authority}/{name}{query}")
}

/// A store on its own PostgreSQL database.
pub struct PgFixture {
    pub store: SqlStore,
    pub db: PgDatabase,
}

impl StoreFixture for PgFixture {
    fn store(&self) -> &dyn Store {
        &self.store
    }

    async fn teardown(self) {
        drop(self.store);
        self.db.drop_database().await;
    }
}

pub fn pg_config(url: &str) -> StoreConfig {
    StoreConfig {
        url: url.to_owned(),
        // Many tests run at once against one server: keep each one small.
        max_connections: 4,
        min_connections: 0,
        ..StoreConfig::default()
    }
}

pub async fn postgres() -> Option<PgFixture> {
    let db = PgDatabase::create().await?;
    let store = SqlStore::connect_with(pg_config(&db.url))
        .await
        .expect("open a PostgreSQL store");
    Some(PgFixture { store, db })
}
