//! The dashboard's files, compiled into the binary: nothing is read from disk or
//! fetched from elsewhere at run time.

/// One file of the dashboard.
pub(super) struct Asset {
    /// Its path under `/ui/`.
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

macro_rules! assets {
    ($($path:literal => $content_type:expr),* $(,)?) => {
        &[$(Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/ui/", $path)),
        }),*]
    };
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// Every file served under `/ui/`; `index.html` is also the answer for `/ui/`.
pub(super) const ASSETS: &[Asset] = assets![
    "index.html" => HTML,
    "style.css" => CSS,
    "js/api.js" => JS,
    "js/app.js" => JS,
    "js/dom.js" => JS,
    "js/live.js" => JS,
    "js/names.js" => JS,
    "js/views/agent.js" => JS,
    "js/views/agents.js" => JS,
    "js/views/audit.js" => JS,
    "js/views/overview.js" => JS,
    "js/views/placement.js" => JS,
    "js/views/signin.js" => JS,
    "js/views/stack.js" => JS,
    "js/views/stacks.js" => JS,
];

/// The index in [`ASSETS`] of the file at `path` (relative to `/ui/`), if there is one.
pub(super) fn find(path: &str) -> Option<usize> {
    let path = if path.is_empty() { "index.html" } else { path };
    ASSETS.iter().position(|asset| asset.path == path)
}
