//! The fleet dashboard at `/ui/`: plain HTML, CSS and JavaScript modules compiled into
//! the binary ([`assets`]), calling the API under `/api/v1` with the key the person
//! signs in with (kept in the tab's session storage, never in a URL or cookie).
//!
//! Every answer carries a Content-Security-Policy that allows scripts, styles and
//! requests to this origin only and no inline script or style, so whatever the API
//! returns can only ever be shown as text. Files are revalidated by a strong ETag
//! (`Cache-Control: no-cache`), so an upgraded server is seen at the next load.

mod assets;

use std::sync::LazyLock;

use poem::http::{StatusCode, header};
use poem::{Endpoint, EndpointExt, Request, Response, get, handler};
use serde_json::json;
use sha2::{Digest, Sha256};

use assets::{ASSETS, Asset};

/// Where the dashboard is mounted.
pub const UI_PREFIX: &str = "/ui";

/// The policy every dashboard answer carries.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// Each asset's strong ETag: a hash of its bytes, computed once.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = Sha256::digest(asset.body);
            let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
            format!("\"{hex}\"")
        })
        .collect()
});

/// The dashboard as a poem endpoint, to nest at [`UI_PREFIX`] without stripping it
/// (`Route::nest_no_strip`). `/ui` redirects to `/ui/` so that the page's relative
/// URLs (its files, and `../api/v1`) resolve the same wherever the application is
/// nested.
pub fn endpoint() -> impl Endpoint<Output = Response> {
    get(dashboard).map_to_response()
}

#[handler]
fn dashboard(req: &Request) -> Response {
    match req.uri().path().strip_prefix(UI_PREFIX) {
        Some("") => {
            // Relative, so it holds when the app is nested under a prefix.
            secured(Response::builder().status(StatusCode::PERMANENT_REDIRECT))
                .header(header::LOCATION, "ui/")
                .finish()
        }
        Some(rest) => serve(req, rest.strip_prefix('/').unwrap_or(rest)),
        // Only a nest that strips the prefix gets here.
        None => not_found(),
    }
}

fn not_found() -> Response {
    let body = json!({"code": "not_found", "message": "no such file in the dashboard"});
    secured(Response::builder().status(StatusCode::NOT_FOUND))
        .content_type("application/json; charset=utf-8")
        .body(body.to_string())
}

fn serve(req: &Request, path: &str) -> Response {
    let Some(found) = assets::find(path) else {
        return not_found();
    };
    let asset: &Asset = &ASSETS[found];
    let etag = &ETAGS[found];
    let builder = secured(Response::builder())
        .header(header::ETAG, etag.as_str())
        .header(header::CACHE_CONTROL, "no-cache");
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|tag| tag.trim() == etag));
    if matches {
        return builder.status(StatusCode::NOT_MODIFIED).finish();
    }
    builder
        .header(header::CONTENT_TYPE, asset.content_type)
        .body(asset.body)
}

/// The headers every dashboard answer has: the CSP, no sniffing, no framing, no
/// referrer.
fn secured(builder: poem::ResponseBuilder) -> poem::ResponseBuilder {
    builder
        .header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::X_FRAME_OPTIONS, "DENY")
        .header(header::REFERRER_POLICY, "no-referrer")
}

#[cfg(test)]
mod tests;
