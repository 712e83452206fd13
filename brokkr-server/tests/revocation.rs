//! A revoked key stops working on every server within a second, whichever way it was
//! revoked: through another replica's API, or with the command line against the same
//! database. Keys stay cached for ten minutes here, so only the revocation counter
//! can explain a refusal.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use brokkr_core::Store;
use brokkr_server::cli::{Cli, run};
use brokkr_store::SqlStore;
use clap::Parser;
use common::{Mode, PgDatabase, Replica, Req, pg_store, seed, test_config};

/// The promise: revoked everywhere within this.
const WITHIN: Duration = Duration::from_secs(1);

/// Two stores on one database, as two processes would have, and what keeps it alive.
struct SharedDatabase {
    url: String,
    first: Arc<dyn Store>,
    second: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    pg: Option<PgDatabase>,
}

async fn sqlite() -> SharedDatabase {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("brokkr.db").display()
    );
    let open =
        || async { Arc::new(SqlStore::connect(&url).await.expect("open")) as Arc<dyn Store> };
    SharedDatabase {
        first: open().await,
        second: open().await,
        url: url.clone(),
        _dir: Some(dir),
        pg: None,
    }
}

async fn postgres() -> Option<SharedDatabase> {
    let db = PgDatabase::create().await?;
    Some(SharedDatabase {
        url: db.url.clone(),
        first: Arc::new(pg_store(&db.url).await),
        second: Arc::new(pg_store(&db.url).await),
        _dir: None,
        pg: Some(db),
    })
}

/// Sends `key` to `replica` until it is refused; how long that took after `since`.
async fn refused_after(replica: &Replica, path: &str, key: &str, since: Instant) -> Duration {
    let deadline = since + Duration::from_secs(10);
    loop {
        let resp = replica.send(Req::new("GET", path).key(key)).await;
        if resp.status == 401 {
            return since.elapsed();
        }
        resp.expect(200);
        assert!(Instant::now() < deadline, "the key still works after 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `brokkr-server --config <file> rotate agent <id>` as the command line would,
/// on a thread of its own (it builds its own runtime); returns the printed key's
/// success.
async fn rotate_with_the_command_line(url: &str, agent: brokkr_core::AgentId) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let config = dir.path().join("brokkr.toml");
    std::fs::write(
        &config,
        format!("[database]\nurl = {url:?}\n\n[log]\nfilter = \"error\"\n"),
    )
    .expect("write the config");
    let cli = Cli::try_parse_from([
        "brokkr-server".to_owned(),
        "--config".to_owned(),
        config.display().to_string(),
        "rotate".to_owned(),
        "agent".to_owned(),
        agent.to_string(),
    ])
    .expect("a valid command line");
    let outcome = std::thread::spawn(move || run(cli).map_err(|err| err.to_string()));
    let outcome = tokio::task::spawn_blocking(move || outcome.join())
        .await
        .expect("join")
        .expect("the command did not panic");
    outcome.expect("rotate succeeded");
}

async fn revoked_everywhere_within_a_second(db: SharedDatabase) {
    let world = seed(db.first.as_ref()).await;
    let mut config = test_config();
    config.auth.key_cache_ttl_secs = 600;
    let first = Replica::start(Arc::clone(&db.first), config.clone(), Mode::InProcess).await;
    let second = Replica::start(Arc::clone(&db.second), config, Mode::InProcess).await;

    // The second replica has both agents' keys cached.
    let agent_path = format!("/api/v1/agents/{}", world.agent);
    let other_path = format!("/api/v1/agents/{}", world.other_agent);
    for (path, key) in [
        (&agent_path, &world.agent_key),
        (&other_path, &world.other_agent_key),
    ] {
        second
            .send(Req::new("GET", path).key(key))
            .await
            .expect(200);
    }

    // Rotated through the first replica's API.
    let started = Instant::now();
    let rotated = first
        .send(Req::new("POST", format!("{agent_path}/rotate-pak")).key(&world.admin_key))
        .await;
    rotated.expect(200);
    let took = refused_after(&second, &agent_path, &world.agent_key, started).await;
    assert!(
        took < WITHIN,
        "API rotation reached the other replica after {took:?}"
    );
    let new_key = rotated.json()["pak"]
        .as_str()
        .expect("the new key")
        .to_owned();
    second
        .send(Req::new("GET", &agent_path).key(&new_key))
        .await
        .expect(200);

    // Rotated with the command line, which has no server to tell.
    rotate_with_the_command_line(&db.url, world.other_agent).await;
    let done = Instant::now();
    for replica in [&first, &second] {
        let took = refused_after(replica, &other_path, &world.other_agent_key, done).await;
        assert!(
            took < WITHIN,
            "command-line rotation took {took:?} to take effect"
        );
    }

    first.stop().await;
    second.stop().await;
    if let Some(pg) = db.pg {
        drop((db.first, db.second));
        pg.drop_database().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_every_server_within_a_second_sqlite() {
    revoked_everywhere_within_a_second(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_every_server_within_a_second_postgres() {
    let Some(db) = postgres().await else {
        return;
    };
    revoked_everywhere_within_a_second(db).await;
}
