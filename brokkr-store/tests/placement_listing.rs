//! An agent listing that comes back empty while the control plane knows agents (a
//! restored backup, a botched migration, a query gone wrong) never empties a placement
//! decision: neither the periodic refresh nor the periodic reload of the index may
//! turn it into removals (Argo CD #18480).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use brokkr_core::plan::GuardOverrides;
use brokkr_core::runtime::placement::RejectionPage;
use brokkr_core::runtime::{ControlPlane, Settings};
use brokkr_core::{Actor, Heartbeat, NewAgent, NewStack, Pak, PlacementPolicy};
use chrono::Utc;
use sea_orm::ConnectionTrait;

/// Placement periods the test waits through: more than the reload interval (every
/// tenth period), so both kinds of resync meet the empty listing.
const PERIOD: Duration = Duration::from_millis(50);
const PERIODS_WAITED: u32 = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_agent_listing_keeps_every_decision() {
    let fixture = common::sqlite().await.expect("a SQLite store");
    let url = fixture.url();
    let settings = Settings {
        placement_period: Some(PERIOD),
        ..Settings::default()
    };
    let cp = ControlPlane::builder(Arc::new(fixture.store))
        .settings(settings)
        .build();
    let _background = cp.start();
    let admin = Actor::Admin;
    for name in ["edge-a", "edge-b"] {
        let agent = cp
            .store()
            .create_agent(
                &admin,
                NewAgent {
                    name: name.into(),
                    cluster_name: name.into(),
                    labels: Default::default(),
                    annotations: Default::default(),
                    key: Pak::generate().stored(),
                },
            )
            .await
            .expect("register");
        let beat = Heartbeat {
            agent_id: agent.id,
            at: Utc::now(),
            capabilities: None,
        };
        cp.store().record_heartbeats(&[beat]).await.expect("beat");
    }
    let stack = cp
        .store()
        .create_stack(
            &admin,
            NewStack {
                name: "web".into(),
                ..Default::default()
            },
        )
        .await
        .expect("stack")
        .id;
    // The guard would hold removing both agents; loosened, only the listing rule
    // stands between an empty listing and an empty decision.
    let loose = GuardOverrides {
        min_removed_agents: Some(1_000),
        ..GuardOverrides::default()
    };
    cp.set_guard_policy(&admin, stack, loose)
        .await
        .expect("loosen the guard");
    let page = RejectionPage::default();
    cp.set_placement_policy(&admin, stack, PlacementPolicy::default(), page)
        .await
        .expect("place on every agent");
    let chosen = async || {
        let view = cp
            .stack_placement(&admin, stack, page)
            .await
            .expect("placement");
        view.placement.decision.map_or(0, |d| d.chosen.len())
    };
    // The controller learns of the second agent's heartbeat on its own schedule.
    let deadline = Instant::now() + Duration::from_secs(10);
    while chosen().await < 2 {
        assert!(Instant::now() < deadline, "both agents placed within 10 s");
        tokio::time::sleep(PERIOD).await;
    }

    // Behind the control plane's back (SQLite announces nothing): every agent gone from
    // the listing.
    let db = sea_orm::Database::connect(url.as_str())
        .await
        .expect("a second connection");
    db.execute_unprepared("UPDATE agents SET deleted_at = updated_at")
        .await
        .expect("hide every agent");

    let until = Instant::now() + PERIOD * PERIODS_WAITED;
    while Instant::now() < until {
        tokio::time::sleep(PERIOD).await;
        assert_eq!(
            chosen().await,
            2,
            "an empty listing must never become an empty decision"
        );
    }
}
