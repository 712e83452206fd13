//! Brokkr's reference REST server: API v1 as a thin HTTP mapping over
//! [`brokkr_core::runtime::ControlPlane`].
//!
//! Every rule (roles, row access, validation, caches, long polls, placement) lives in
//! the control plane; a handler here parses the request, calls one `ControlPlane`
//! method and maps the answer (errors to HTTP in one place, [`error`]). Use it as the
//! `brokkr-server` binary (`cargo run -p brokkr-server -- serve`), or as a library:
//!
//! - [`serve`] runs the whole server from a [`Config`](config::Config): opens the
//!   store, creates the first admin key, listens, shuts down gracefully.
//! - [`serve::Server`] does the same in two steps, so you learn the bound address
//!   (tests bind `127.0.0.1:0`) and can take the admin key instead of printing it;
//!   [`serve::Server::bind_with_control_plane`] serves a control plane you built (your
//!   own placements, generators and settings).
//! - [`app`] is the HTTP application alone, a poem endpoint over a `ControlPlane` (or
//!   an [`AppState`](state::AppState)) to nest in your own poem server. It logs through
//!   whatever tracing subscriber is in effect where it is built.
//!
//! Start reading at [`app`] (routes and middleware), then [`api`] (one module per
//! resource), [`auth`] (the bearer scheme) and [`error`] (the one place errors become
//! HTTP).
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use brokkr_core::runtime::ControlPlane;
//! use poem::{Route, get, handler, listener::TcpListener};
//!
//! #[handler]
//! fn hello() -> &'static str {
//!     "my control plane"
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = brokkr_server::config::Config::load(None)?;
//! let store = brokkr_server::serve::open_store(&config.database).await?;
//! let control_plane = ControlPlane::builder(Arc::new(store))
//!     .settings(config.runtime_settings())
//!     .build();
//! // Heartbeat writes, cache invalidation and placement run while `background` lives.
//! let background = control_plane.start();
//! let app = Route::new()
//!     .at("/hello", get(hello))
//!     .nest("/brokkr", brokkr_server::app(control_plane));
//! poem::Server::new(TcpListener::bind("127.0.0.1:3000")).run(app).await?;
//! background.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Or the whole server, stopping on Ctrl-C:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = brokkr_server::config::Config::load(None)?;
//! brokkr_server::serve(config, Default::default(), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(())
//! # }
//! ```
//!
//! Modules: [`api`] the endpoints, [`app`] routing and probes, [`auth`] the bearer
//! scheme, [`cli`] the command line, [`client`] its
//! subcommands that talk to a running server, [`config`] configuration loading, [`error`]
//! error bodies, [`metrics`] Prometheus metrics, [`middleware`] body limit, JSON
//! errors and request metrics, [`serve`] running the server, [`state`] what handlers
//! share, [`tls`] HTTPS certificates and their renewal.

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
mod connections;
pub mod deferred;
pub mod error;
pub mod metrics;
pub mod middleware;
pub mod serve;
pub mod state;
pub mod tls;
pub mod ui;
pub mod webhooks;

pub use app::app;
pub use serve::serve;
