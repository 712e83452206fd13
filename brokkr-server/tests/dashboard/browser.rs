//! Headless Chromium driven through chromedriver (Debian's `chromium` and
//! `chromium-driver`), one fresh browser profile per test, every wait bounded.

#![allow(dead_code)] // each test binary uses a different subset

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// How long any wait for the page lasts.
pub const WAIT: Duration = Duration::from_secs(10);
/// The desktop window.
pub const DESKTOP: (u32, u32) = (1280, 800);
/// A phone-sized window.
pub const PHONE: (u32, u32) = (390, 844);

/// A browser session and the chromedriver serving it; both end on drop at the latest.
pub struct Browser {
    pub client: Client,
    /// The dashboard's address, `http://127.0.0.1:port/ui/`.
    pub ui: String,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

/// The chromedriver process, stopped when dropped (also when a test panics).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn program(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("address").port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium showing nothing yet, for the server
    /// at `base` (`http://127.0.0.1:port`).
    pub async fn start(base: &str) -> Browser {
        let driver_path = program("BROKKR_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = program("BROKKR_CHROMIUM", "/usr/bin/chromium");
        let port = free_port();
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(Driver)
            .unwrap_or_else(|err| panic!("start {}: {err}", driver_path.display()));
        let profile = tempfile::tempdir().expect("a profile directory");
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": chromium, "args": args}),
        );
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(err) if started.elapsed() < WAIT => {
                    let _ = err;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(err) => panic!("no WebDriver session from chromedriver at {url}: {err}"),
            }
        };
        let browser = Browser {
            client,
            ui: format!("{base}/ui/"),
            _driver: driver,
            _profile: profile,
        };
        browser.resize(DESKTOP).await;
        browser
    }

    /// Resizes the window (the viewport follows).
    pub async fn resize(&self, (width, height): (u32, u32)) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("resize the window");
    }

    /// Opens the dashboard at `route` (`#/stacks`, or `` for the start).
    pub async fn open(&self, route: &str) {
        self.client
            .goto(&format!("{}{route}", self.ui))
            .await
            .expect("open the dashboard");
    }

    /// Signs in with `key` and waits for the overview.
    pub async fn sign_in(&self, key: &str) {
        self.open("").await;
        let input = self.find("#key").await;
        input.send_keys(key).await.expect("type the key");
        self.find("#sign-in button[type=submit]")
            .await
            .click()
            .await
            .expect("submit");
        self.find("#top:not([hidden]) #sign-out").await;
    }

    /// The first element matching `css`, waiting for it.
    pub async fn find(&self, css: &str) -> Element {
        let started = Instant::now();
        loop {
            if let Ok(found) = self.client.find(Locator::Css(css)).await {
                return found;
            }
            if started.elapsed() > WAIT {
                let page = self.text("body").await.unwrap_or_default();
                panic!("no element matches {css} within {WAIT:?}; the page says:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The visible text of the first element matching `css`, if there is one.
    pub async fn text(&self, css: &str) -> Option<String> {
        let found = self.client.find(Locator::Css(css)).await.ok()?;
        found.text().await.ok()
    }

    /// Waits until the text of `css` contains `wanted`; answers that text.
    pub async fn wait_text(&self, css: &str, wanted: &str) -> String {
        let started = Instant::now();
        loop {
            let text = self.text(css).await.unwrap_or_default();
            if text.contains(wanted) {
                return text;
            }
            if started.elapsed() > WAIT {
                panic!("{css} does not show {wanted:?} within {WAIT:?}; it shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `script` (a function body) in the page and answers its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|err| panic!("run {script}: {err}"))
    }

    /// Saves a PNG of the window as `<dir>/<name>.png` when `BROKKR_UI_SCREENSHOTS`
    /// names a directory (the docs' screenshots are taken so).
    pub async fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("BROKKR_UI_SCREENSHOTS") else {
            return;
        };
        let mut dir = PathBuf::from(dir);
        if dir.is_relative() {
            // Relative to the workspace, as `cargo test` runs in the crate's directory.
            dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(dir);
        }
        std::fs::create_dir_all(&dir).expect("create the screenshot directory");
        // Let a refresh in flight land, so the picture shows the settled page.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = self.client.screenshot().await.expect("take a screenshot");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write the screenshot");
    }

    /// Like [`Browser::screenshot`], of the whole page: the window is made as tall as
    /// the page for the picture (at most 2,400 pixels), then made desktop-sized again.
    pub async fn screenshot_whole(&self, name: &str) {
        if std::env::var_os("BROKKR_UI_SCREENSHOTS").is_none() {
            return;
        }
        let height = self
            .eval("return document.documentElement.scrollHeight;")
            .await
            .as_u64()
            .unwrap_or(u64::from(DESKTOP.1));
        // The window's frame takes some of its height from the page.
        let tall = u32::try_from(height + 150)
            .unwrap_or(2400)
            .clamp(DESKTOP.1, 2400);
        self.resize((DESKTOP.0, tall)).await;
        self.screenshot(name).await;
        self.resize(DESKTOP).await;
    }

    /// Ends the session and chromedriver.
    pub async fn close(self) {
        let _ = tokio::time::timeout(WAIT, self.client.clone().close()).await;
    }
}
