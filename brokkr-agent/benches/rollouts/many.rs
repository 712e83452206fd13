//! Figure 3: many rollouts at once. `stacks` stacks, each on its own slice of the
//! fleet (agents assigned in turn), each with the 5-wave policy and no bake, get a new
//! candidate at once. Measures transitions per second until every rollout ended (the
//! driver's own counters, and pins from the audit) and the server's peak memory.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use crate::admin::Admin;
use crate::db::Db;
use crate::fleet::{ADMIN_CONCURRENCY, Fleet, manifest, policy};
use crate::server::{ServerProcess, memory};
use crate::stats::verdict;
use crate::{Result, Settings};

pub const RSS_BUDGET_KIB: u64 = 500 * 1024;

/// Longest wait for every rollout to end.
const ALL_TIMEOUT: Duration = Duration::from_secs(300);

/// Creates `count` stacks named `{prefix}-{i}`, stack `i` on the agents `j` with
/// `j % count == i`, each with its first version applied and `policy` set; answers the
/// stack ids.
pub async fn stacks(
    admin: &Admin,
    fleet: &mut Fleet,
    prefix: &str,
    count: usize,
    policy: Value,
) -> Result<Vec<String>> {
    let n = fleet.ids.len();
    let started = Instant::now();
    let made: Vec<Result<(String, String)>> = futures::stream::iter(0..count)
        .map(|i| async move {
            let name = format!("{prefix}-{i}");
            let stack = admin.stack(&name).await?;
            let object = admin.deploy(&stack, manifest(&name, 0, false)).await?;
            Ok((stack, object))
        })
        .buffered(ADMIN_CONCURRENCY)
        .collect()
        .await;
    let made = made.into_iter().collect::<Result<Vec<_>>>()?;
    let ids: Vec<String> = made.iter().map(|(s, _)| s.clone()).collect();
    let pairs: Vec<(String, usize)> = (0..n.max(count))
        .map(|j| (ids[j % count].clone(), j % n))
        .collect();
    let assignments = pairs.len();
    fleet.assign(admin, pairs).await?;
    let objects: std::collections::HashSet<String> = made.into_iter().map(|(_, o)| o).collect();
    let mut seen = std::collections::HashSet::new();
    fleet
        .collect(Duration::from_secs(120), None, |a| {
            if objects.contains(&a.object.to_string()) {
                seen.insert((a.agent, a.stack));
            }
            seen.len() >= assignments
        })
        .await;
    let puts: Vec<Result<Value>> = futures::stream::iter(&ids)
        .map(|stack| {
            let policy = policy.clone();
            async move {
                admin
                    .put(&format!("/stacks/{stack}/rollout-policy"), policy)
                    .await
            }
        })
        .buffer_unordered(ADMIN_CONCURRENCY)
        .collect()
        .await;
    puts.into_iter().collect::<Result<Vec<_>>>()?;
    println!(
        "  {count} stacks over {n} agents ({assignments} assignments, {} first versions applied), policies set, in {:.1?}",
        seen.len(),
        started.elapsed()
    );
    Ok(ids)
}

/// Appends a new version to every stack at once (stack `i` of `stacks` is the
/// `{prefix}-{i}` that [`stacks`] made); answers how long the appends took.
pub async fn append_all(
    admin: &Admin,
    stacks: &[String],
    prefix: &str,
    version: usize,
) -> Result<Duration> {
    let started = Instant::now();
    let appended: Vec<Result<String>> = futures::stream::iter(stacks.iter().enumerate())
        .map(|(i, stack)| admin.deploy(stack, manifest(&format!("{prefix}-{i}"), version, false)))
        .buffer_unordered(ADMIN_CONCURRENCY)
        .collect()
        .await;
    appended.into_iter().collect::<Result<Vec<_>>>()?;
    Ok(started.elapsed())
}

pub async fn run(
    admin: &Admin,
    db: &Db,
    server: &ServerProcess,
    fleet: &mut Fleet,
    settings: &Settings,
) -> Result {
    let count = settings.many_stacks;
    let ids = stacks(admin, fleet, "many", count, policy(settings.waves, "0s")).await?;
    let counts_before = admin.driver_counts().await?;
    let audits_before = db.rollout_audits().await?;
    let done_before = db.rollouts_in("succeeded").await?;
    let started = Instant::now();
    let appends = append_all(admin, &ids, "many", 1).await?;
    let deadline = Instant::now() + ALL_TIMEOUT;
    let mut done = 0;
    while Instant::now() < deadline {
        done = db.rollouts_in("succeeded").await? - done_before;
        let failed = db.rollouts_in("reverted").await? + db.rollouts_in("revert_failed").await?;
        if done + failed >= count as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let counts_after = admin.driver_counts().await?;
    let audits = db.rollout_audits().await? - audits_before;
    let evaluations = counts_after.0.saturating_sub(counts_before.0);
    let transitions = counts_after.1.saturating_sub(counts_before.1);
    let stats = server.stats();
    println!(
        "  {count} rollouts at once ({:.1} s to append them): {done} succeeded after {elapsed:.1} s",
        appends.as_secs_f64()
    );
    println!(
        "    {:.0} rollout and wave transitions/s ({transitions}), {:.0} audited changes/s ({audits}: pins and transitions), {:.0} evaluations/s ({evaluations})",
        transitions as f64 / elapsed,
        audits as f64 / elapsed,
        evaluations as f64 / elapsed
    );
    println!("    server: {}", memory(&stats));
    println!(
        "  budgets: server VmHWM {} MiB < {} MiB: {}; every rollout succeeded: {}",
        stats.peak_rss_kib / 1024,
        RSS_BUDGET_KIB / 1024,
        verdict(stats.peak_rss_kib < RSS_BUDGET_KIB),
        verdict(done == count as i64)
    );
    Ok(())
}
