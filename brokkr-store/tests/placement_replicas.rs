//! Two control planes over one PostgreSQL database, as two replicas: an agent changed
//! through one shows in the other's placement answers without a reload, carried by
//! the store's change feed (`brokkr_agent_change`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use brokkr_core::runtime::placement::RejectionPage;
use brokkr_core::runtime::{ControlPlane, Settings};
use brokkr_core::{Actor, Heartbeat, MetadataField, MetadataTarget, NewAgent, NewStack, Pak};
use brokkr_store::SqlStore;
use chrono::Utc;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_changed_on_one_replica_moves_the_other_replicas_placement() {
    let Some(fixture) = common::postgres().await else {
        return;
    };
    let second = SqlStore::connect(&fixture.db.url)
        .await
        .expect("a second store");
    // Long periods: only announcements can explain what the second replica sees.
    let settings = Settings {
        placement_period: Some(Duration::from_secs(3600)),
        ..Settings::default()
    };
    let one = ControlPlane::builder(Arc::new(fixture.store))
        .settings(settings.clone())
        .build();
    let two = ControlPlane::builder(Arc::new(second))
        .settings(settings)
        .build();
    let (bg_one, bg_two) = (one.start(), two.start());

    let agent = one
        .store()
        .create_agent(
            &Actor::Admin,
            NewAgent {
                name: "edge".into(),
                cluster_name: "edge".into(),
                labels: [("region".to_owned(), "us".to_owned())].into(),
                annotations: Default::default(),
                key: Pak::generate().stored(),
            },
        )
        .await
        .expect("register")
        .id;
    let beat = Heartbeat {
        agent_id: agent,
        at: Utc::now(),
        capabilities: None,
    };
    one.store().record_heartbeats(&[beat]).await.unwrap();
    let stack = one
        .store()
        .create_stack(
            &Actor::Admin,
            NewStack {
                name: "web".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .id;
    let policy =
        serde_json::from_value(json!({"agent_selector": {"matchLabels": {"region": "eu"}}}))
            .unwrap();
    let page = RejectionPage::default();
    two.set_placement_policy(&Actor::Admin, stack, policy, page)
        .await
        .expect("set on the second replica");
    let view = two
        .stack_placement(&Actor::Admin, stack, page)
        .await
        .unwrap();
    assert_eq!(view.placement.decision.unwrap().chosen, vec![]);

    // Relabelled through the first replica: the second one learns it from the feed.
    one.put_metadata(
        &Actor::Admin,
        MetadataTarget::Agent(agent),
        MetadataField::Labels,
        "region",
        "eu",
    )
    .await
    .expect("relabel");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let view = two
            .stack_placement(&Actor::Admin, stack, page)
            .await
            .unwrap();
        let rejected = view.rejected.unwrap();
        if rejected.total == 0 && view.placement.decision.unwrap().chosen == vec![agent] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second replica did not follow the agent: {rejected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bg_one.shutdown().await;
    bg_two.shutdown().await;
    fixture.db.drop_database().await;
}
