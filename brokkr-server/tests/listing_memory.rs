//! The tester's scenario for issue 13, scaled to CI: a stack holding objects of
//! several MiB, listed with and without `?include=yaml_content`, over a real socket.
//! Every answer stays within the byte budget plus a small overhead, and the process's
//! resident memory grows by a bounded amount, whatever the size of the stack's history.
//!
//! Before pages were bounded in bytes, one listing of 60 objects of 8 MiB answered
//! 503 MB and took the server from 0.3 to 2.8 GB. Resident memory is measured for
//! the whole test process, so this binary holds this one test alone.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use brokkr_core::{Actor, NewDeploymentObject, StackId, Store};
use common::{Backend, Mode, TestApp, test_config};
use serde_json::Value;

const MIB: u64 = 1024 * 1024;
/// Objects in the stack and the size of each: 48 MiB of history.
const OBJECTS: usize = 16;
const OBJECT_BYTES: usize = 3 * MIB as usize;
/// The default budget.
const BUDGET: u64 = 4 * MIB;
/// What an answer may carry beyond its YAML: the entries' other fields and JSON.
const ANSWER_OVERHEAD: u64 = 64 * 1024;
/// How far resident memory may rise above where it stood before the listings. A page
/// holds at most 4 MiB of YAML, held a few times over (row, JSON, client's copy);
/// with pages bounded by count alone one listing held the 48 MiB several times over.
const RSS_GROWTH_LIMIT: u64 = 96 * MIB;

/// The process's resident set, from `/proc/self/status`.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

/// The highest resident set seen while `work` runs, sampled every millisecond.
async fn peak_rss_during<T>(work: impl std::future::Future<Output = T>) -> (T, u64) {
    let peak = Arc::new(AtomicU64::new(rss_bytes()));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = std::thread::spawn({
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    let out = work.await;
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("the sampler ends");
    (out, peak.load(Ordering::Relaxed).max(rss_bytes()))
}

async fn fill(store: &dyn Store, stack: StackId) {
    for i in 0..OBJECTS {
        let yaml = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big-{i}\n  namespace: default\ndata:\n  padding: {}\n",
            "x".repeat(OBJECT_BYTES - 100)
        );
        let new = NewDeploymentObject::from_yaml(stack, yaml).expect("valid YAML");
        store
            .append_deployment_object(&Actor::Admin, new)
            .await
            .expect("append");
    }
}

/// Walks the listing at `query`; returns the number of entries and the largest
/// answer's size in bytes.
async fn walk(app: &TestApp, query: &str) -> (usize, u64) {
    let path = format!("/api/v1/stacks/{}/deployment-objects", app.world.stack);
    let (mut entries, mut largest) = (0, 0);
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}?{query}&cursor={c}"),
            None => format!("{path}?{query}"),
        };
        let resp = app.admin_get(&url).await;
        resp.expect(200);
        largest = largest.max(resp.text.len() as u64);
        let page: Value = resp.json();
        entries += page["items"].as_array().expect("items").len();
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            return (entries, largest);
        }
    }
}

async fn scenario(backend: Backend) {
    let mut config = test_config();
    config.server.listing_yaml_bytes = BUDGET as usize;
    let Some(app) = TestApp::start_with(backend, Mode::Socket, config).await else {
        return;
    };
    fill(app.store(), app.world.stack).await;
    let total = OBJECTS + 1; // and the seeded one
    let before = rss_bytes();

    let ((entries, largest), bare_peak) = peak_rss_during(walk(&app, "limit=1000")).await;
    assert_eq!(entries, total);
    assert!(
        largest < ANSWER_OVERHEAD,
        "{largest} bytes without the YAML"
    );
    let bare_answer = largest;

    let ((entries, largest), full_peak) =
        peak_rss_during(walk(&app, "limit=1000&include=yaml_content")).await;
    assert_eq!(entries, total);
    assert!(
        largest <= BUDGET + ANSWER_OVERHEAD,
        "{largest} bytes in one answer with the YAML"
    );
    let full_answer = largest;

    // Four at once, as the tester ran them.
    let four =
        futures::future::join_all((0..4).map(|_| walk(&app, "limit=1000&include=yaml_content")));
    let (walks, four_peak) = peak_rss_during(four).await;
    assert!(walks.iter().all(|(entries, _)| *entries == total));

    let mib = |bytes: u64| bytes as f64 / MIB as f64;
    println!(
        "{backend:?}: {OBJECTS} objects of {} MiB; answers: {bare_answer} bytes without the \
         YAML, at most {full_answer} with it; RSS before {:.1} MiB, peak growth: \
         {:.1} MiB without the YAML, {:.1} MiB with it, {:.1} MiB with four listings at once",
        OBJECT_BYTES as u64 / MIB,
        mib(before),
        mib(bare_peak.saturating_sub(before)),
        mib(full_peak.saturating_sub(before)),
        mib(four_peak.saturating_sub(before)),
    );
    for (what, peak) in [
        ("without the YAML", bare_peak),
        ("with the YAML", full_peak),
        ("four listings at once", four_peak),
    ] {
        let growth = peak.saturating_sub(before);
        assert!(
            growth < RSS_GROWTH_LIMIT,
            "{backend:?}, {what}: resident memory grew by {:.1} MiB",
            mib(growth)
        );
    }
    app.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_of_a_heavy_stack_stay_bounded_in_bytes_and_memory() {
    scenario(Backend::Sqlite).await;
    scenario(Backend::Postgres).await;
}
