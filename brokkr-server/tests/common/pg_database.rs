//! A fresh PostgreSQL database per test, dropped afterwards even when the test
//! panics. Shared by the server's tests, the agent's scenario tests and the benches of
//! all three crates that need a scratch database (they include this file by path).

use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

/// Where PostgreSQL test databases are created from.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh PostgreSQL database, dropped (`WITH (FORCE)`) by [`PgDatabase::drop_database`],
/// or when it is dropped without that (a failed test unwinding).
pub struct PgDatabase {
    admin: Option<DatabaseConnection>,
    base: String,
    /// Its name.
    pub name: String,
    /// A URL that connects to it.
    pub url: String,
}

impl PgDatabase {
    /// Creates the database, or returns `None` (after a notice) when PostgreSQL is not
    /// reachable. Under `CI=true` an unreachable PostgreSQL is a failure.
    pub async fn create() -> Option<PgDatabase> {
        let base =
            std::env::var("BROKKR_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned());
        let connect =
            tokio::time::timeout(Duration::from_secs(10), Database::connect(base.as_str()));
        let admin = match connect.await {
            Ok(Ok(admin)) => admin,
            failure => {
                let why = match failure {
                    Ok(Err(err)) => err.to_string(),
                    _ => "timed out".to_owned(),
                };
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("PostgreSQL at {base} is unreachable under CI=true: {why}");
                }
                eprintln!("skipping: PostgreSQL at {base} is unreachable ({why})");
                return None;
            }
        };
        let name = format!("brokkr_srv_test_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create a test database");
        let url = with_database(&base, &name);
        Some(PgDatabase {
            admin: Some(admin),
            base,
            name,
            url,
        })
    }

    /// Drops the database, also while connections to it are open.
    pub async fn drop_database(mut self) {
        let admin = self.admin.take().expect("not dropped yet");
        admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .expect("drop the test database");
        let _ = admin.close().await;
    }
}

impl Drop for PgDatabase {
    /// A test that panicked never reached `drop_database`: drop the database from a
    /// thread of its own (the test's runtime may be unwinding), bounded in time.
    fn drop(&mut self) {
        if self.admin.take().is_none() {
            return;
        }
        let (base, name) = (self.base.clone(), self.name.clone());
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let drop_it = async {
                    let admin = Database::connect(base.as_str()).await.ok()?;
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    admin.execute_unprepared(&sql).await.ok()?;
                    admin.close().await.ok()
                };
                let _ = tokio::time::timeout(Duration::from_secs(10), drop_it).await;
            });
        });
        let _ = cleanup.join();
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
