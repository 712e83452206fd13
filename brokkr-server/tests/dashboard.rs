//! The dashboard in a real browser: headless Chromium through chromedriver, against
//! the real server on 127.0.0.1, asserting through the DOM.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them), so the
//! tests are ignored by `cargo test --workspace`; run them with
//! `cargo test -p brokkr-server --test dashboard -- --ignored --test-threads=1`.
//! With `BROKKR_UI_SCREENSHOTS=docs/dashboard` they also save the screenshots
//! `docs/dashboard.md` shows.

#[path = "dashboard/browser.rs"]
mod browser;
mod common;

use std::time::{Duration, Instant};

use browser::{Browser, PHONE, WAIT};
use common::{Backend, Mode, Req, TestApp, Transport, test_config};
use serde_json::{Value, json};

const NEEDS_CHROMIUM: &str = "needs chromium + chromedriver; run by .ci/run";

/// The seeded world on a socket server, plus a fleet worth looking at: `agent-a`
/// (beating, chosen by `stack-a`'s placement) runs `stack-a` healthily; `agent-b`,
/// assigned `stack-a` directly, failed to apply it.
struct Fleet {
    app: TestApp,
    base: String,
}

impl Fleet {
    async fn start() -> Fleet {
        let app = TestApp::start_with(Backend::Memory, Mode::Socket, test_config())
            .await
            .expect("the memory store needs nothing");
        let Transport::Socket { base, .. } = &app.replica.transport else {
            unreachable!("started over a socket");
        };
        let base = base.clone();
        let fleet = Fleet { app, base };
        let w = fleet.app.world.clone();
        fleet
            .admin(
                "POST",
                &format!("/agents/{}/targets", w.other_agent),
                json!({"stack_id": w.stack}),
            )
            .await;
        // Placement chooses agent-a by its label and says why agent-b is left out.
        let policy = json!({"agent_selector": {"matchLabels": {"team": "blue"}}});
        fleet
            .admin("PUT", &format!("/stacks/{}/placement", w.stack), policy)
            .await;
        let capabilities = json!({"capabilities": {"kubernetes_version": "v1.33.2", "node_count": 3,
            "allocatable_cpu_millis": 12000, "allocatable_memory_bytes": 51539607552u64,
            "features": ["gpu"], "extra": {"region": "eu-north-1"}}});
        fleet
            .as_agent(
                &w.agent_key,
                &format!("/agents/{}/heartbeat", w.agent),
                capabilities,
            )
            .await;
        fleet
            .as_agent(
                &w.other_agent_key,
                &format!("/agents/{}/heartbeat", w.other_agent),
                json!({}),
            )
            .await;
        fleet
            .app
            .state
            .control_plane
            .flush_heartbeats()
            .await
            .expect("flush");
        fleet
            .as_agent(
                &w.agent_key,
                &format!("/agents/{}/health", w.agent),
                health(&w.deployment_object.to_string(), "healthy"),
            )
            .await;
        fleet
            .as_agent(
                &w.other_agent_key,
                &format!("/agents/{}/events", w.other_agent),
                json!({"deployment_object_id": w.deployment_object.to_string(), "event_type": "apply",
                       "status": "failure", "message": "ImagePullBackOff: registry.example/web:2 not found"}),
            )
            .await;
        fleet
            .as_agent(
                &w.other_agent_key,
                &format!("/agents/{}/health", w.other_agent),
                health(&w.deployment_object.to_string(), "failed"),
            )
            .await;
        fleet
    }

    async fn send(&self, method: &str, key: &str, path: &str, body: Value) -> Value {
        let resp = self
            .app
            .send(
                Req::new(method, format!("/api/v1{path}"))
                    .key(key)
                    .json(&body),
            )
            .await;
        assert!(
            resp.status < 300,
            "{method} {path}: {} {}",
            resp.status,
            resp.text
        );
        resp.json()
    }

    async fn admin(&self, method: &str, path: &str, body: Value) -> Value {
        let key = self.app.world.admin_key.clone();
        self.send(method, &key, path, body).await
    }

    async fn as_agent(&self, key: &str, path: &str, body: Value) -> Value {
        self.send("POST", key, path, body).await
    }

    async fn browser(&self) -> Browser {
        Browser::start(&self.base).await
    }

    async fn stop(self) {
        self.app.teardown().await;
    }
}

fn health(object: &str, status: &str) -> Value {
    json!({"deployment_object_id": object, "summary": format!("1 of 1 workloads {status}"),
           "resources": [{"api_version": "apps/v1", "kind": "Deployment", "namespace": "web",
                          "name": "api", "status": status}]})
}

#[tokio::test]
#[ignore = "needs chromium + chromedriver; run by .ci/run"]
async fn admin_signs_in_and_sees_agents_and_stacks() {
    let _ = NEEDS_CHROMIUM;
    let fleet = Fleet::start().await;
    let b = fleet.browser().await;
    b.open("").await;
    b.find("#sign-in").await;
    b.screenshot("sign-in").await;
    b.sign_in(&fleet.app.world.admin_key).await;

    let agents = b.wait_text("#fleet", "Agents").await;
    assert!(agents.contains("Stacks by health"), "{agents}");
    let active = b.wait_text("#fleet .counter-active .count", "2").await;
    assert_eq!(active, "2", "agent-a and agent-b beat");
    assert_eq!(
        b.text("#fleet .counter-failed .count").await.as_deref(),
        Some("1")
    );
    let failures = b.wait_text("#recent-failures", "ImagePullBackOff").await;
    assert!(failures.contains("agent-b"), "{failures}");
    b.screenshot("overview").await;

    // The overview follows the fleet without a reload.
    let w = fleet.app.world.clone();
    let failure = json!({"deployment_object_id": w.deployment_object.to_string(), "event_type": "apply",
                         "status": "failure", "message": "OOMKilled: web-0"});
    fleet
        .as_agent(
            &w.agent_key,
            &format!("/agents/{}/events", w.agent),
            failure,
        )
        .await;
    let failures = b.wait_text("#recent-failures", "OOMKilled").await;
    assert!(failures.contains("agent-a"), "{failures}");

    b.open("#/stacks").await;
    let stacks = b.wait_text("main", "stack-a").await;
    // After a navigation the page's heading has the focus, for keyboard and reader users.
    let focused = b
        .eval("return document.activeElement && document.activeElement.tagName;")
        .await;
    assert_eq!(focused, json!("H1"));
    assert!(
        stacks.contains("stack-b") && stacks.contains("stack-spare"),
        "{stacks}"
    );
    b.screenshot("stacks").await;

    b.open("#/agents").await;
    let agents = b.wait_text("main", "agent-a").await;
    assert!(
        agents.contains("agent-b") && agents.contains("active"),
        "{agents}"
    );
    b.screenshot("agents").await;

    b.open("#/audit").await;
    b.wait_text("main", "Audit log").await;
    b.wait_text("main table", "create").await;
    b.screenshot("audit").await;
    let everything = b.text("main table").await.unwrap_or_default();
    assert!(everything.contains("api_key"), "{everything}");
    b.open("#/audit?resource_type=agent_target").await;
    let filtered = b.wait_text("main table", "agent_target").await;
    assert!(
        !filtered.contains("api_key"),
        "filtered by resource type: {filtered}"
    );
    b.close().await;
    fleet.stop().await;
}

#[tokio::test]
#[ignore = "needs chromium + chromedriver; run by .ci/run"]
async fn a_stack_shows_versions_health_failures_and_new_objects_live() {
    let fleet = Fleet::start().await;
    let w = fleet.app.world.clone();
    let b = fleet.browser().await;
    b.sign_in(&w.admin_key).await;
    b.open(&format!("#/stacks/{}", w.stack)).await;

    let rows = b.wait_text("#stack-agents", "agent-b").await;
    assert!(rows.contains("agent-a"), "{rows}");
    let healthy = b
        .wait_text("#stack-agents tr.agent-row:not(.failing)", "agent-a")
        .await;
    assert!(
        healthy.contains("latest") && healthy.contains("healthy"),
        "{healthy}"
    );
    let failing = b
        .text("#stack-agents tr.failing")
        .await
        .expect("a failing row");
    assert!(
        failing.contains("agent-b") && failing.contains("failing"),
        "{failing}"
    );
    assert!(
        failing.contains("failed") && failing.contains("ImagePullBackOff"),
        "{failing}"
    );
    assert_eq!(b.text("#stack-health").await.as_deref(), Some("failed"));
    let placement = b.text("#stack-placement").await.unwrap_or_default();
    assert!(
        placement.contains("label_mismatch"),
        "agent-b lacks team=blue: {placement}"
    );
    assert!(
        placement.contains("1 agent"),
        "agent-a is chosen: {placement}"
    );
    b.screenshot_whole("stack").await;

    // A new deployment object shows without reloading the page.
    b.eval("window.__sameDocument = true; return null;").await;
    let objects = b.text("#stack-objects").await.unwrap_or_default();
    let newest = fleet
        .admin(
            "POST",
            &format!("/stacks/{}/deployment-objects/from-template", w.stack),
            json!({"template_id": w.template.to_string(), "parameters": {"name": "web-config"}}),
        )
        .await;
    let sequence = format!("#{}", newest["sequence_id"]);
    assert!(!objects.contains(&sequence), "{objects}");
    let started = Instant::now();
    let objects = b.wait_text("#stack-objects", &sequence).await;
    assert!(started.elapsed() < WAIT);
    assert!(
        objects.contains("template") && objects.contains("v1"),
        "provenance: {objects}"
    );
    assert_eq!(
        b.eval("return window.__sameDocument === true;").await,
        json!(true),
        "no reload"
    );
    // agent-a now runs an older version.
    b.wait_text("#stack-agents tr.agent-row:not(.failing)", "behind")
        .await;

    b.open(&format!("#/agents/{}", w.agent)).await;
    let agent = b.wait_text("main", "team=blue").await;
    assert!(
        agent.contains("stack-a") && agent.contains("apply success"),
        "{agent}"
    );
    b.screenshot_whole("agent").await;
    b.close().await;
    fleet.stop().await;
}

#[tokio::test]
#[ignore = "needs chromium + chromedriver; run by .ci/run"]
async fn a_name_made_of_html_stays_text() {
    let fleet = Fleet::start().await;
    let name = "<img src=x onerror=alert(1)>";
    let stack = fleet.admin("POST", "/stacks", json!({"name": name})).await;
    let b = fleet.browser().await;
    b.sign_in(&fleet.app.world.admin_key).await;
    b.open(&format!("#/stacks?name={}", urlencode(name))).await;
    let listed = b.wait_text("main table", name).await;
    assert!(listed.contains(name), "{listed}");
    b.open(&format!("#/stacks/{}", stack["id"].as_str().expect("id")))
        .await;
    b.wait_text("#stack-name", name).await;
    assert_eq!(
        b.eval("return document.querySelectorAll('img').length;")
            .await,
        json!(0)
    );
    assert!(b.client.get_alert_text().await.is_err(), "no alert opened");
    b.close().await;
    fleet.stop().await;
}

#[tokio::test]
#[ignore = "needs chromium + chromedriver; run by .ci/run"]
async fn a_generator_sees_only_its_own_stacks() {
    let fleet = Fleet::start().await;
    let w = fleet.app.world.clone();
    let b = fleet.browser().await;
    b.sign_in(&w.generator_key).await;
    let mine = b.wait_text("main", "stack-a").await;
    assert!(
        mine.contains("stack-spare") && !mine.contains("stack-b"),
        "{mine}"
    );
    let nav = b.text("#nav").await.unwrap_or_default();
    assert!(!nav.contains("Agents") && !nav.contains("Audit"), "{nav}");
    b.screenshot("generator").await;
    b.open("#/stacks").await;
    let all = b.wait_text("main table", "stack-a").await;
    assert!(!all.contains("stack-b"), "{all}");
    b.open(&format!("#/stacks/{}", w.other_stack)).await;
    b.wait_text("main .error", "Not found").await;
    b.open(&format!("#/stacks/{}", w.stack)).await;
    b.wait_text("#stack-agents", "admin only").await;
    b.close().await;
    fleet.stop().await;
}

#[tokio::test]
#[ignore = "needs chromium + chromedriver; run by .ci/run"]
async fn sign_out_forgets_the_key_and_refused_keys_are_explained() {
    let fleet = Fleet::start().await;
    let w = fleet.app.world.clone();
    let b = fleet.browser().await;

    // A revoked key is refused at sign-in, in words.
    b.open("").await;
    b.find("#key")
        .await
        .send_keys(&w.revoked_key)
        .await
        .expect("type");
    b.find("#sign-in button[type=submit]")
        .await
        .click()
        .await
        .expect("submit");
    b.wait_text("#sign-in-status", "refused").await;
    assert_eq!(b.eval("return sessionStorage.length;").await, json!(0));

    // Signing out forgets the key and shows the form again.
    b.sign_in(&w.admin_key).await;
    assert_eq!(
        b.eval("return sessionStorage.getItem('brokkr.key');").await,
        json!(w.admin_key)
    );
    let url = b.client.current_url().await.expect("url");
    assert!(
        !url.as_str().contains(&w.admin_key),
        "the key is never in the URL"
    );
    b.find("#sign-out").await.click().await.expect("sign out");
    b.find("#sign-in").await;
    assert_eq!(b.eval("return sessionStorage.length;").await, json!(0));
    b.wait_text("#sign-in-status", "Signed out").await;

    // A key revoked while the page is open sends the person back to sign in.
    b.sign_in(&w.generator_key).await;
    b.wait_text("main", "stack-a").await;
    fleet
        .admin(
            "POST",
            &format!("/generators/{}/rotate-pak", w.generator),
            json!({}),
        )
        .await;
    b.wait_text("#sign-in-status", "revoked").await;
    assert_eq!(b.eval("return sessionStorage.length;").await, json!(0));
    b.screenshot("revoked").await;
    b.close().await;
    fleet.stop().await;
}

#[tokio::test]
#[ignore = "needs chromium + chromedriver; run by .ci/run"]
async fn a_phone_sized_window_and_an_unreachable_server() {
    let fleet = Fleet::start().await;
    let w = fleet.app.world.clone();
    let b = fleet.browser().await;
    b.resize(PHONE).await;
    b.sign_in(&w.admin_key).await;
    b.open(&format!("#/stacks/{}", w.stack)).await;
    b.wait_text("#stack-agents", "agent-b").await;
    let overflow = b
        .eval("return document.documentElement.scrollWidth - window.innerWidth;")
        .await;
    assert!(
        overflow.as_i64().is_some_and(|px| px <= 0),
        "no sideways scrolling: {overflow}"
    );
    b.screenshot("stack-phone").await;

    // The server goes away: the page says so and keeps what it showed.
    let Fleet { app, .. } = fleet;
    app.replica.stop().await;
    b.wait_text("#banner", "cannot be reached").await;
    assert!(
        b.text("#stack-agents")
            .await
            .unwrap_or_default()
            .contains("agent-b")
    );
    b.close().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// Percent-encodes everything but unreserved characters.
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
