//! The client and the blast-radius guard: plans printed, a stopped deploy's exit code
//! and message, a confirmation.

use serde_json::json;

use super::common::{self, Backend};
use super::{start, write};

/// `deploy --dry-run` prints the plan; a deploy the guard stops exits 4 naming the plan
/// and its violations; `plans get` reads it; `deploy --confirm-plan` goes ahead once.
async fn plans_and_the_guard(backend: Backend) {
    let Some((app, cli)) = start(backend).await else {
        return;
    };
    // Any prune needs a confirmation on the seeded stack, which its agent applied.
    let policy = app
        .send(
            common::Req::new(
                "PUT",
                format!("/api/v1/stacks/{}/guard-policy", app.world.stack),
            )
            .key(&app.world.admin_key)
            .json(&json!({"max_pruned_objects": 0})),
        )
        .await;
    policy.expect(200);
    let files = tempfile::tempdir().unwrap();
    let other = write(
        files.path(),
        "other.yaml",
        &common::CONFIGMAP_YAML.replace("name: demo", "name: other"),
    );

    let planned = cli
        .run(&["deploy", "stack-a", &other, "--dry-run", "-o", "json"])
        .await
        .json();
    assert_eq!(planned["guard"]["verdict"], "confirmation_required");
    assert_eq!(planned["summary"]["objects"]["prune"], 1);
    let table = cli.run(&["deploy", "stack-a", &other, "--dry-run"]).await;
    assert_eq!(table.code, 0, "{table:?}");
    assert!(
        table.stdout.contains("VERDICT") && table.stdout.contains("confirmation_required"),
        "{table:?}"
    );
    assert!(
        table.stdout.lines().any(|l| l.starts_with("change ")),
        "one move line: {table:?}"
    );

    let stopped = cli.run(&["deploy", "stack-a", &other]).await;
    stopped.fails(4, "error: blast_radius_exceeded: ");
    assert!(
        stopped
            .stderr
            .contains("violation: max_pruned_objects actual=1 limit=0"),
        "{stopped:?}"
    );
    let plan = stopped
        .stderr
        .lines()
        .find_map(|line| line.trim().strip_prefix("plan: "))
        .unwrap_or_else(|| panic!("a plan id: {stopped:?}"))
        .to_owned();
    let read = cli.run(&["plans", "get", &plan, "-o", "json"]).await.json();
    assert_eq!(read["plan_id"], plan.as_str());
    cli.run(&["plans", "confirm", &plan])
        .await
        .fails(1, "error: not_held: ");

    let object = cli
        .run(&[
            "deploy",
            "stack-a",
            &other,
            "--confirm-plan",
            &plan,
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(object["stack_id"], app.world.stack.to_string());
    cli.run(&["deploy", "stack-a", &other, "--confirm-plan", &plan])
        .await
        .fails(4, "error: plan_consumed: ");

    app.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_and_the_guard_on_sqlite() {
    plans_and_the_guard(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_and_the_guard_on_postgres() {
    plans_and_the_guard(Backend::Postgres).await;
}
