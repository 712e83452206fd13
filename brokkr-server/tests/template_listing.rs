//! `GET /templates` is bounded in bytes: entries leave out the latest version's
//! `content` and `parameters_schema` unless `?include=content` asks for them, and a
//! page with them ends before passing `server.listing_yaml_bytes`, with a cursor that
//! continues after it; a template larger than that comes alone on its page. On every
//! backend, and for a generator (its own and the global templates) as for admin.

mod common;

use brokkr_core::{Actor, GeneratorId, NewTemplate, Store};
use common::{Backend, Mode, TestApp, test_config};
use serde_json::{Value, json};

/// The budget the tests configure: small, so a few templates of tens of KiB pass it.
const BUDGET: u64 = 64 * 1024;

async fn start(backend: Backend) -> Option<TestApp> {
    let mut config = test_config();
    config.server.listing_yaml_bytes = BUDGET as usize;
    TestApp::start_with(backend, Mode::InProcess, config).await
}

/// Creates templates whose source is about `size` bytes each, through the store.
async fn create_sized(store: &dyn Store, owner: Option<GeneratorId>, sizes: &[usize]) {
    for (i, size) in sizes.iter().enumerate() {
        let new = NewTemplate {
            name: format!(
                "sized-{}-{i}",
                owner.map_or("global".into(), |g| g.to_string())
            ),
            generator_id: owner,
            content: format!("{{{{ name }}}}: \"{}\"\n", "x".repeat(*size)),
            parameters_schema: json!({"type": "object"}),
            ..Default::default()
        };
        store
            .create_template(&Actor::Admin, new)
            .await
            .expect("create template");
    }
}

/// Every page of `GET /templates?{query}` as `key`.
async fn pages(app: &TestApp, key: &str, query: &str) -> Vec<Value> {
    app.pages(key, &format!("/api/v1/templates?{query}")).await
}

fn items(page: &Value) -> &Vec<Value> {
    page["items"].as_array().expect("items")
}

/// The bytes of content an entry carries: source and schema as the answer sends them.
fn carried(template: &Value) -> u64 {
    let source = template["content"].as_str().expect("content").len();
    let schema = template["parameters_schema"].to_string().len();
    (source + schema) as u64
}

async fn content_only_when_included(backend: Backend) {
    let Some(app) = start(backend).await else {
        return;
    };
    create_sized(app.store(), None, &[3_000, 10]).await;
    let admin = app.world.admin_key.clone();

    let bare = pages(&app, &admin, "limit=1000").await;
    assert_eq!(bare.len(), 1);
    let listed = items(&bare[0]);
    assert_eq!(listed.len(), 3, "the seeded template and two more");
    for template in listed {
        assert!(template.get("content").is_none(), "{template}");
        assert!(template.get("parameters_schema").is_none(), "{template}");
        assert!(template["content_bytes"].as_u64().expect("content_bytes") > 0);
        assert!(
            template["parameters_schema_bytes"]
                .as_u64()
                .expect("schema bytes")
                >= 17
        );
    }
    let big = listed
        .iter()
        .find(|t| t["content_bytes"].as_u64() == Some(3_015))
        .expect("the 3,000-byte template with its size");

    let full = pages(&app, &admin, "limit=1000&include=content").await;
    let full = items(&full[0]);
    assert_eq!(full.len(), 3);
    for template in full {
        let source = template["content"].as_str().expect("content");
        assert_eq!(
            template["content_bytes"].as_u64(),
            Some(source.len() as u64)
        );
        assert!(template["parameters_schema"].is_object());
    }
    // The single GET keeps both, always.
    let one = app
        .admin_get(&format!(
            "/api/v1/templates/{}",
            big["id"].as_str().expect("id")
        ))
        .await;
    one.expect(200);
    assert_eq!(one.json()["content"].as_str().map(str::len), Some(3_015));
    assert!(one.json()["parameters_schema"].is_object());

    let bad = app
        .admin_get("/api/v1/templates?include=yaml_content")
        .await;
    bad.expect(400);
    app.teardown().await;
}

async fn pages_end_at_the_budget(backend: Backend) {
    let Some(app) = start(backend).await else {
        return;
    };
    let kib = 1024;
    let generator = Some(app.world.generator);
    let other = Some(app.world.other_generator);
    create_sized(app.store(), generator, &[30 * kib, 30 * kib, 100 * kib]).await;
    create_sized(app.store(), None, &[30 * kib, 20 * kib, 20 * kib]).await;
    create_sized(app.store(), other, &[40 * kib, 40 * kib]).await;

    for (key, count) in [
        (app.world.admin_key.clone(), 9),
        (app.world.generator_key.clone(), 7),
    ] {
        let all_ids: Vec<Value> = items(&pages(&app, &key, "limit=1000").await[0])
            .iter()
            .map(|t| t["id"].clone())
            .collect();
        assert_eq!(all_ids.len(), count);
        for order in ["asc", "desc"] {
            let query = format!("limit=1000&order={order}&include=content");
            let walked = pages(&app, &key, &query).await;
            let mut ids = Vec::new();
            for page in &walked {
                let page_items = items(page);
                let bytes: u64 = page_items.iter().map(carried).sum();
                assert!(
                    page_items.len() <= 1 || bytes <= BUDGET,
                    "{order}: a page of {} templates carries {bytes} bytes",
                    page_items.len()
                );
                ids.extend(page_items.iter().map(|t| t["id"].clone()));
            }
            let mut expected = all_ids.clone();
            if order == "desc" {
                expected.reverse();
            }
            assert_eq!(ids, expected, "{order}: every template once, in order");
            assert!(walked.len() >= 4, "{order}: pages of at most 64 KiB");
        }
    }

    // The row limit still applies within the budget.
    let limited = pages(&app, &app.world.admin_key, "limit=2&include=content").await;
    assert!(limited.iter().all(|p| items(p).len() <= 2));
    assert_eq!(limited.iter().map(|p| items(p).len()).sum::<usize>(), 9);
    app.teardown().await;
}

#[tokio::test]
async fn content_only_when_included_memory() {
    content_only_when_included(Backend::Memory).await;
}

#[tokio::test]
async fn content_only_when_included_sqlite() {
    content_only_when_included(Backend::Sqlite).await;
}

#[tokio::test]
async fn content_only_when_included_postgres() {
    content_only_when_included(Backend::Postgres).await;
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
