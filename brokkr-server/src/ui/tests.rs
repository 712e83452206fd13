use std::sync::Arc;

use brokkr_core::testing::MemoryStore;
use poem::test::TestClient;

use super::*;
use crate::config::Config;
use crate::state::AppState;

fn client() -> TestClient<impl Endpoint> {
    let state = AppState::new(
        Arc::new(MemoryStore::new()),
        Config::default(),
        Default::default(),
    );
    TestClient::new(crate::app::app(state))
}

#[tokio::test]
async fn every_file_is_served_with_its_type_and_the_policy() {
    let cli = client();
    for asset in ASSETS {
        let resp = cli.get(format!("/ui/{}", asset.path)).send().await;
        resp.assert_status_is_ok();
        resp.assert_header(header::CONTENT_TYPE, asset.content_type);
        resp.assert_header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
        resp.assert_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
        resp.assert_header(header::CACHE_CONTROL, "no-cache");
        resp.assert_header_exist(header::ETAG);
        let body = resp.0.into_body().into_bytes().await.unwrap();
        assert_eq!(&body[..], asset.body, "{}", asset.path);
    }
}

#[tokio::test]
async fn the_root_is_the_page_and_ui_redirects_to_it() {
    let cli = client();
    let resp = cli.get("/ui/").send().await;
    resp.assert_status_is_ok();
    resp.assert_content_type("text/html; charset=utf-8");
    resp.assert_header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    let page = resp.0.into_body().into_string().await.unwrap();
    assert!(page.contains(r#"<script type="module" src="js/app.js">"#));

    let resp = cli.get("/ui").send().await;
    resp.assert_status(StatusCode::PERMANENT_REDIRECT);
    resp.assert_header(header::LOCATION, "ui/");
}

#[tokio::test]
async fn an_unchanged_file_is_not_sent_again() {
    let cli = client();
    let resp = cli.get("/ui/js/app.js").send().await;
    let etag = resp.0.headers()[header::ETAG].to_str().unwrap().to_owned();
    let resp = cli
        .get("/ui/js/app.js")
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await;
    resp.assert_status(StatusCode::NOT_MODIFIED);
    resp.assert_header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    let resp = cli
        .get("/ui/js/app.js")
        .header(header::IF_NONE_MATCH, "\"other\"")
        .send()
        .await;
    resp.assert_status_is_ok();
}

#[tokio::test]
async fn an_unknown_file_is_a_404_with_the_policy() {
    let cli = client();
    for path in ["/ui/nope.js", "/ui/js/../index.html", "/ui/js/views"] {
        let resp = cli.get(path).send().await;
        resp.assert_status(StatusCode::NOT_FOUND);
        resp.assert_header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    }
    let resp = cli.post("/ui/index.html").send().await;
    resp.assert_status(StatusCode::METHOD_NOT_ALLOWED);
}

/// The policy forbids inline script and style, so the files must not need them.
#[test]
fn no_file_has_inline_script_or_style() {
    for asset in ASSETS {
        let text = std::str::from_utf8(asset.body).expect("text");
        for banned in [
            "style=",
            "onclick=",
            "onerror=",
            "onload=",
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!text.contains(banned), "{} contains {banned}", asset.path);
        }
    }
    let page = std::str::from_utf8(ASSETS[0].body).unwrap();
    assert_eq!(
        page.matches("<script").count(),
        1,
        "one external module only"
    );
    assert!(!page.contains("<style"));
}

/// Every file under `ui/` is served, so a new view cannot be forgotten in the table.
#[test]
fn every_file_on_disk_is_in_the_table() {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push(rel);
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    let mut on_disk = Vec::new();
    walk(&root, &root, &mut on_disk);
    on_disk.sort();
    let mut served: Vec<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
    served.sort();
    assert_eq!(on_disk, served);
}
