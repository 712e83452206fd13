//! Brokkr's reference REST server: API v1 over any [`brokkr_core::Store`].
//!
//! Use it as the `brokkr-server` binary (`cargo run -p brokkr-server -- serve`), or as
//! a library inside your own control plane:
//!
//! - [`serve`] runs the whole server from a [`Config`](config::Config): opens the
//!   store, creates the first admin key, listens, shuts down gracefully.
//! - [`serve::Server`] does the same in two steps, so you learn the bound address
//!   (tests bind `127.0.0.1:0`) and can take the admin key instead of printing it.
//! - [`app`] is the HTTP application alone, a poem endpoint over an
//!   [`AppState`](state::AppState) to nest in your own poem server.
//!
//! Start reading at [`app`] (routes and middleware), then [`api`] (one module per
//! resource), [`auth`] (keys and roles) and [`error`] (the one place errors become
//! HTTP).
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use brokkr_core::GeneratorRegistry;
//! use brokkr_server::config::Config;
//! use brokkr_server::state::AppState;
//! use poem::{EndpointExt, Route, get, handler, listener::TcpListener};
//!
//! #[handler]
//! fn hello() -> &'static str {
//!     "my control plane"
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::load(None)?;
//! let store = brokkr_server::serve::open_store(&config.database).await?;
//! let state = AppState::new(Arc::new(store), config, GeneratorRegistry::default());
//! // Heartbeat writes, cache invalidation and placement run while `background` lives.
//! let background = state.start_background();
//! let app = Route::new()
//!     .at("/hello", get(hello))
//!     .nest("/brokkr", brokkr_server::app(state.clone()));
//! poem::Server::new(TcpListener::bind("127.0.0.1:3000")).run(app).await?;
//! background.shutdown(&state).await;
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
//! Modules: [`api`] the endpoints, [`app`] routing and probes, [`auth`] keys,
//! [`cli`] the command line, [`config`] configuration loading, [`error`] error
//! bodies, [`heartbeat`] coalesced heartbeats, [`metrics`] Prometheus metrics,
//! [`middleware`] body limit, JSON errors and request metrics, [`placement`] the
//! controller keeping placement decisions current, [`serve`] running the
//! server, [`state`] shared state and background tasks, [`target_cache`] target
//! states by ETag.

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod metrics;
pub mod middleware;
pub mod serve;
pub mod state;

pub use app::app;
pub use serve::serve;
