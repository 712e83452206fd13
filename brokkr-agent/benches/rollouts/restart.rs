//! Figure 4: a restart with many active rollouts. `count` stacks, each on one agent,
//! each with a one-wave policy baking for `bake`, get a new candidate; once every wave
//! bakes the server is killed (SIGKILL), and started again on the same database and
//! address after every bake ran out, so that every rollout is due at start. Measures
//! from the new process's spawn (and from its listening) to the first evaluation its
//! driver applied (`brokkr_rollout_evaluations_total` on `/metrics`, read every 10 ms)
//! and to every rollout having ended.

use std::time::{Duration, Instant};

use crate::admin::Admin;
use crate::db::Db;
use crate::fleet::{Fleet, policy};
use crate::many::{append_all, stacks};
use crate::server::{ServerProcess, memory};
use crate::{Result, Settings};

/// Longest wait for every wave to bake, and for every rollout to end after the restart.
const WAIT: Duration = Duration::from_secs(300);

pub async fn run(
    admin: &Admin,
    db: &Db,
    server: ServerProcess,
    database_url: &str,
    max_connections: Option<u32>,
    fleet: &mut Fleet,
    settings: &Settings,
) -> Result<ServerProcess> {
    let count = settings.restart_rollouts;
    let bake = format!("{}s", settings.restart_bake.as_secs());
    let ids = stacks(admin, fleet, "restart", count, policy(1, &bake)).await?;
    let done_before = db.rollouts_in("succeeded").await?;
    let baking_before = db.waves_in("baking").await?;
    let appends = append_all(admin, &ids, "restart", 1).await?;
    let deadline = Instant::now() + WAIT;
    let mut baking = 0;
    while Instant::now() < deadline {
        baking = db.waves_in("baking").await? - baking_before;
        let done = db.rollouts_in("succeeded").await? - done_before;
        if baking + done >= count as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let active = db.rollouts_in("running").await?;
    println!(
        "  restart: {count} rollouts appended in {:.1} s; {baking} waves baking ({bake}), {active} rollouts running; server before the kill: {}",
        appends.as_secs_f64(),
        memory(&server.stats())
    );
    let last_bake = db.last_bake_start().await?;
    let addr = server.addr().to_owned();
    server.kill();
    // Every bake runs out while the server is down: each rollout is due at start.
    if let Some(last) = last_bake {
        let ends = last + chrono::TimeDelta::from_std(settings.restart_bake)?;
        let left = (ends - chrono::Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(left + Duration::from_millis(200)).await;
    }
    let server = ServerProcess::spawn(
        database_url,
        max_connections,
        Some(&addr),
        &crate::server_log(),
    )?;
    let restarted = Admin::new(&server.url, &admin.key);
    let mut first = None;
    let mut all = None;
    let done_at_start = db.rollouts_in("succeeded").await?;
    while Instant::now() < server.spawned + WAIT {
        let evaluations = restarted
            .metric("brokkr_rollout_evaluations_total")
            .await
            .unwrap_or(0.0);
        if evaluations >= 1.0 && first.is_none() {
            first = Some(Instant::now());
        }
        if first.is_some() && db.rollouts_in("running").await? == 0 {
            all = Some(Instant::now());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let since = |at: Option<Instant>, from: Instant| {
        at.map_or("not seen".to_owned(), |at| {
            format!("{:.0} ms", at.duration_since(from).as_secs_f64() * 1000.0)
        })
    };
    println!(
        "    spawn -> listening {:.0} ms; spawn -> first step {} (listening -> first step {}); spawn -> all {} rollouts ended {}",
        server
            .listening
            .duration_since(server.spawned)
            .as_secs_f64()
            * 1000.0,
        since(first, server.spawned),
        since(first, server.listening),
        active,
        since(all, server.spawned)
    );
    println!(
        "    {} rollouts succeeded after the restart; server after: {}",
        db.rollouts_in("succeeded").await? - done_at_start,
        memory(&server.stats())
    );
    Ok(server)
}
