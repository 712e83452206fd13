//! The runtime behaviour suite (`ControlPlane` without HTTP), once per backend.

mod common;

use std::sync::Arc;

use brokkr_core::Store;
use brokkr_core::testing::runtime::RuntimeFixture;
use brokkr_store::SqlStore;

/// A SQLite file or a PostgreSQL database, shared with the control plane.
struct Shared {
    store: Arc<SqlStore>,
    database: Option<common::PgDatabase>,
    _dir: Option<tempfile::TempDir>,
}

impl RuntimeFixture for Shared {
    fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store) as Arc<dyn Store>
    }

    async fn teardown(self) {
        drop(self.store);
        if let Some(database) = self.database {
            database.drop_database().await;
        }
    }
}

async fn sqlite() -> Option<Shared> {
    let fixture = common::sqlite().await?;
    Some(Shared {
        store: Arc::new(fixture.store),
        database: None,
        _dir: Some(fixture.dir),
    })
}

async fn postgres() -> Option<Shared> {
    let fixture = common::postgres().await?;
    Some(Shared {
        store: Arc::new(fixture.store),
        database: Some(fixture.db),
        _dir: None,
    })
}

mod on_sqlite {
    use super::sqlite;

    brokkr_core::runtime_conformance_tests!(sqlite);
}

mod on_postgres {
    use super::postgres;

    brokkr_core::runtime_conformance_tests!(postgres);
}
