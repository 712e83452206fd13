//! Figure 2: a bad candidate that the agents of the second wave fail on (their
//! simulated clusters refuse its Secret, as an admission webhook would). Measures, from
//! the breach (the first failure event the server recorded for the candidate), the
//! time until no pin is left (rows of `agent_stack_pins`, counted every 20 ms) and
//! until 99% of the agents that had the candidate applied the baseline again.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::Result;
use crate::admin::Admin;
use crate::db::Db;
use crate::fleet::{Fleet, manifest};
use crate::release::{Released, rollout_timeout};
use crate::stats::{Clock, millis, time};

/// How often the pins are counted.
const PIN_POLL: Duration = Duration::from_millis(20);
/// How long applies of the baseline are still collected after the rollout ended.
const AFTER_END: Duration = Duration::from_secs(5);
/// Longest wait for the reverted rollout to reach a final state: every agent that had
/// the candidate pinned reports the baseline (applied again after the failure, and a
/// fresh health report) within seconds.
const FINAL_WAIT: Duration = Duration::from_secs(30);

pub async fn run(admin: &Admin, db: &Db, fleet: &mut Fleet, released: &Released) -> Result {
    let n = fleet.ids.len();
    let failing: Vec<usize> = released
        .wave_of
        .iter()
        .filter(|(_, wave)| **wave == 1)
        .map(|(i, _)| *i)
        .collect();
    for &i in &failing {
        let cluster = fleet
            .simulator
            .cluster(i)
            .ok_or("no such simulated agent")?;
        cluster.reject_kind("Secret", "denied by the bench's admission policy");
    }
    let had_candidate: HashSet<usize> = released
        .wave_of
        .iter()
        .filter(|(_, wave)| **wave == 0)
        .map(|(i, _)| *i)
        .collect();
    println!(
        "  revert: {} agents of wave 1 refuse Secrets; a candidate with a Secret goes out",
        failing.len()
    );
    let head = released.head.clone();
    fleet.drain();
    let clock = Clock::now();
    let t0 = Instant::now();
    let bad = admin
        .deploy(&released.stack, manifest("bench", 2, true))
        .await?;
    let (ended_tx, ended) = watch::channel(false);
    let limit = rollout_timeout(n);
    let mut back = HashSet::new();
    let (applies, rollout, pins_gone) = tokio::join!(
        fleet.collect(limit + AFTER_END, Some(ended), |a| {
            if a.object.to_string() == head && had_candidate.contains(&a.agent) {
                back.insert(a.agent);
            }
            back.len() >= had_candidate.len()
        }),
        async {
            let rollout = admin.wait_final(&released.stack, FINAL_WAIT).await;
            // The agents that had the candidate may still be reapplying the baseline.
            tokio::time::sleep(AFTER_END).await;
            let _ = ended_tx.send(true);
            rollout
        },
        pins_gone(db, limit),
    );
    let rollout = rollout?;
    let pins_gone = pins_gone?;
    let state = rollout["state"].as_str().unwrap_or("?");
    let start = clock.wall(t0);
    let breach = db.first_failure(bad.parse()?).await?;
    let ended = time(&rollout["finished_at"]);
    println!(
        "    rollout {}: {state}, ended +{} after the append",
        rollout["id"].as_str().unwrap_or("?"),
        ended.map_or("-".into(), |t| format!("{:.0} ms", millis(start, t)))
    );
    let Some(breach) = breach else {
        println!("    no failure event was recorded: no breach to measure from");
        return Ok(());
    };
    println!(
        "    breach (first failure event) +{:.0} ms after the append",
        millis(start, breach)
    );
    println!(
        "    breach -> pins gone: {}",
        pins_gone.map_or("not seen".into(), |t| format!(
            "{:.0} ms",
            millis(breach, t)
        ))
    );
    if let Some(ended) = ended {
        println!(
            "    breach -> rollout {state}: {:.0} ms",
            millis(breach, ended)
        );
    }
    // Each agent that had the candidate, its first apply of the baseline afterwards.
    let mut first: HashMap<usize, DateTime<Utc>> = HashMap::new();
    let mut bad_elsewhere = 0;
    for applied in &applies {
        let object = applied.object.to_string();
        if object == head && had_candidate.contains(&applied.agent) {
            first.entry(applied.agent).or_insert(clock.wall(applied.at));
        } else if object == bad && released.wave_of.get(&applied.agent).is_none_or(|w| *w >= 1) {
            bad_elsewhere += 1;
        }
    }
    let mut times: Vec<f64> = first.values().map(|t| millis(breach, *t)).collect();
    times.sort_by(f64::total_cmp);
    let k = had_candidate.len();
    let at = |share: f64| {
        let rank = ((k as f64 * share).ceil() as usize).max(1);
        times
            .get(rank - 1)
            .map_or("not reached".to_owned(), |ms| format!("{ms:.0} ms"))
    };
    println!(
        "    breach -> 99% of the {k} agents that had the candidate applied the baseline: {}; 100%: {} ({} did)",
        at(0.99),
        at(1.0),
        times.len()
    );
    println!(
        "    applies of the bad candidate outside wave 0 (must be 0): {bad_elsewhere}; pins left: {}",
        db.pins().await?
    );
    let id = rollout["id"].as_str().unwrap_or_default();
    let details = admin.get(&format!("/rollouts/{id}")).await?;
    let mut states = std::collections::BTreeMap::new();
    for agent in details["agents"].as_array().into_iter().flatten() {
        let key = format!(
            "wave {} {}",
            agent["wave"],
            agent["state"].as_str().unwrap_or("?")
        );
        *states.entry(key).or_insert(0) += 1;
    }
    println!(
        "    rollout state {:?} ({}); agents: {states:?}",
        details["rollout"]["state"].as_str().unwrap_or("?"),
        details["rollout"]["state_reason"].as_str().unwrap_or("")
    );
    Ok(())
}

/// When no pin was left any more, after some were seen (wall clock, read every
/// [`PIN_POLL`]); `None` if that did not happen within `limit`.
async fn pins_gone(db: &Db, limit: Duration) -> Result<Option<DateTime<Utc>>> {
    let deadline = Instant::now() + limit;
    let mut seen = false;
    while Instant::now() < deadline {
        let pins = db.pins().await?;
        if pins > 0 {
            seen = true;
        } else if seen {
            return Ok(Some(Utc::now()));
        }
        tokio::time::sleep(PIN_POLL).await;
    }
    Ok(None)
}
