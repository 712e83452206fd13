//! `GET /stacks/{id}/deployment-objects` is bounded in bytes: entries leave out the
//! YAML unless `?include=yaml_content` asks for it, and a page with the YAML ends
//! before passing `server.listing_yaml_bytes`, with a cursor that continues after it;
//! an object larger than that comes alone on its page. On every backend.

mod common;

use brokkr_core::{Actor, NewDeploymentObject, StackId, Store};
use common::{Backend, Mode, Req, TestApp, test_config};
use serde_json::Value;

/// The budget the tests configure: small, so a few objects of tens of KiB pass it.
const BUDGET: u64 = 64 * 1024;

async fn start(backend: Backend) -> Option<TestApp> {
    let mut config = test_config();
    config.server.listing_yaml_bytes = BUDGET as usize;
    TestApp::start_with(backend, Mode::InProcess, config).await
}

/// A ConfigMap of about `size` bytes of YAML.
fn sized_yaml(name: &str, size: usize) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata:\n  padding: \"{}\"\n",
        "x".repeat(size.saturating_sub(100))
    )
}

/// Appends objects of `sizes` bytes to `stack`, through the store.
async fn append_sized(store: &dyn Store, stack: StackId, sizes: &[usize]) {
    for (i, size) in sizes.iter().enumerate() {
        let yaml = sized_yaml(&format!("sized-{i}"), *size);
        let new = NewDeploymentObject::from_yaml(stack, yaml).expect("valid YAML");
        store
            .append_deployment_object(&Actor::Admin, new)
            .await
            .expect("append");
    }
}

fn objects_path(app: &TestApp) -> String {
    format!("/api/v1/stacks/{}/deployment-objects", app.world.stack)
}

/// Every page of the listing at `query`, as admin.
async fn pages(app: &TestApp, query: &str) -> Vec<Value> {
    let url = format!("{}?{query}", objects_path(app));
    app.pages(&app.world.admin_key, &url).await
}

fn items(page: &Value) -> &Vec<Value> {
    page["items"].as_array().expect("items")
}

async fn yaml_only_when_included(backend: Backend) {
    let Some(app) = start(backend).await else {
        return;
    };
    append_sized(app.store(), app.world.stack, &[2_000, 30_000]).await;

    let bare = pages(&app, "limit=1000").await;
    assert_eq!(bare.len(), 1, "without the YAML one page holds everything");
    let bare = items(&bare[0]);
    assert_eq!(bare.len(), 3, "the seeded object and two more");
    for item in bare {
        assert!(item.get("yaml_content").is_none(), "{item}");
        assert!(item["yaml_bytes"].as_u64().expect("yaml_bytes") > 0);
    }

    let full = pages(&app, "limit=1000&include=yaml_content").await;
    let full: Vec<&Value> = full.iter().flat_map(items).collect();
    assert_eq!(full.len(), 3);
    for (listed, bare) in full.iter().zip(bare) {
        let yaml = listed["yaml_content"]
            .as_str()
            .expect("yaml_content included");
        assert_eq!(listed["yaml_bytes"], yaml.len() as u64);
        assert_eq!(listed["id"], bare["id"]);
        assert_eq!(listed["yaml_checksum"], bare["yaml_checksum"]);
        // The single-object read carries the same YAML.
        let id = listed["id"].as_str().expect("id");
        let one = app
            .admin_get(&format!("/api/v1/deployment-objects/{id}"))
            .await;
        one.expect(200);
        assert_eq!(one.json()["yaml_content"], yaml);
    }

    let unknown = app
        .admin_get(&format!("{}?include=everything", objects_path(&app)))
        .await;
    unknown.expect(400);
    common::assert_error_body(&unknown, "an unknown include");
    assert_eq!(unknown.json()["code"], "invalid_parameter");
    app.teardown().await;
}

async fn pages_end_at_the_budget(backend: Backend) {
    let Some(app) = start(backend).await else {
        return;
    };
    // 30 + 30 KiB fit the 64 KiB budget, a third does not; 100 KiB comes alone.
    let kib = 1024;
    append_sized(
        app.store(),
        app.world.stack,
        &[
            30 * kib,
            30 * kib,
            30 * kib,
            100 * kib,
            20 * kib,
            20 * kib,
            20 * kib,
        ],
    )
    .await;
    let all_ids: Vec<Value> = items(&pages(&app, "limit=1000").await[0])
        .iter()
        .map(|o| o["id"].clone())
        .collect();
    assert_eq!(all_ids.len(), 8);

    for order in ["asc", "desc"] {
        let walked = pages(
            &app,
            &format!("limit=1000&order={order}&include=yaml_content"),
        )
        .await;
        let mut ids = Vec::new();
        for page in &walked {
            let page_items = items(page);
            let bytes: u64 = page_items
                .iter()
                .map(|o| o["yaml_content"].as_str().expect("yaml").len() as u64)
                .sum();
            assert!(
                page_items.len() == 1 || bytes <= BUDGET,
                "{order}: a page of {} objects carries {bytes} bytes",
                page_items.len()
            );
            ids.extend(page_items.iter().map(|o| o["id"].clone()));
        }
        let mut expected = all_ids.clone();
        if order == "desc" {
            expected.reverse();
        }
        assert_eq!(ids, expected, "{order}: every object once, in order");
        let lengths: Vec<usize> = walked.iter().map(|p| items(p).len()).collect();
        // Ascending: seeded + 30 + 30 | 30 | 100 alone | 20 + 20 + 20.
        // Descending: 20 + 20 + 20 | 100 alone | 30 + 30 | 30 + seeded.
        let want = if order == "asc" {
            [3, 1, 1, 3]
        } else {
            [3, 1, 2, 2]
        };
        assert_eq!(lengths, want, "{order}: page lengths");
    }

    // The row limit still applies within the budget.
    let limited = pages(&app, "limit=2&include=yaml_content").await;
    assert!(limited.iter().all(|p| items(p).len() <= 2));
    assert_eq!(limited.iter().map(|p| items(p).len()).sum::<usize>(), 8);
    app.teardown().await;
}

#[tokio::test]
async fn yaml_only_when_included_memory() {
    yaml_only_when_included(Backend::Memory).await;
}

#[tokio::test]
async fn yaml_only_when_included_sqlite() {
    yaml_only_when_included(Backend::Sqlite).await;
}

#[tokio::test]
async fn yaml_only_when_included_postgres() {
    yaml_only_when_included(Backend::Postgres).await;
}

#[tokio::test]
async fn pages_end_at_the_budget_memory() {
    pages_end_at_the_budget(Backend::Memory).await;
}

#[tokio::test]
async fn pages_end_at_the_budget_sqlite() {
    pages_end_at_the_budget(Backend::Sqlite).await;
}

#[tokio::test]
async fn pages_end_at_the_budget_postgres() {
    pages_end_at_the_budget(Backend::Postgres).await;
}

/// The budget is a setting: `BROKKR__SERVER__LISTING_YAML_BYTES` reaches the listing.
#[tokio::test]
async fn the_budget_comes_from_the_configuration() {
    let env = [(
        "BROKKR__SERVER__LISTING_YAML_BYTES".to_owned(),
        "1".to_owned(),
    )];
    let config = brokkr_server::config::Config::load_with_env(None, env.into_iter().collect())
        .expect("configuration");
    assert_eq!(config.server.listing_yaml_bytes, 1);
    let Some(app) = TestApp::start_with(Backend::Sqlite, Mode::InProcess, config).await else {
        return;
    };
    append_sized(app.store(), app.world.stack, &[500, 500]).await;
    let walked = pages(&app, "include=yaml_content").await;
    assert_eq!(walked.len(), 3, "one object per page under a 1-byte budget");
    let req = Req::new(
        "GET",
        format!("{}?include=yaml_content", objects_path(&app)),
    )
    .key(&app.world.generator_key);
    let resp = app.send(req).await;
    resp.expect(200);
    assert_eq!(items(&resp.json()).len(), 1, "for a generator too");
    app.teardown().await;
}
