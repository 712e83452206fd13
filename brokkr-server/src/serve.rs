//! Running the server: connect the store, bind, make sure an admin key exists, serve
//! until a shutdown signal, let in-flight requests finish, write pending heartbeats.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use brokkr_core::runtime::ControlPlane;
use brokkr_core::{Actor, GeneratorRegistry, KeyOwner, Pak, Store};
use brokkr_store::{SqlStore, StoreConfig};
use tokio::net::TcpListener;

use crate::config::{Config, DatabaseSection};
use crate::state::AppState;
use crate::tls::reload::Reloader;
use crate::tls::{PairFiles, TlsError};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The database could not be opened or migrated.
    #[error("cannot open the store")]
    Store(#[source] brokkr_core::store::Error),
    /// Creating the first admin key failed.
    #[error("cannot create the admin key")]
    AdminKey(#[source] brokkr_core::store::Error),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address from the configuration.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate or key of `[server.tls]` cannot be served.
    #[error("cannot set up TLS")]
    Tls(#[source] TlsError),
}

/// Opens the SQL store the configuration names (running migrations if configured).
pub async fn open_store(database: &DatabaseSection) -> Result<SqlStore, ServeError> {
    SqlStore::connect_with(StoreConfig {
        url: database.url.clone(),
        max_connections: database.max_connections,
        acquire_timeout: std::time::Duration::from_millis(database.acquire_timeout_millis.max(1)),
        run_migrations: database.run_migrations,
        ..StoreConfig::default()
    })
    .await
    .map_err(ServeError::Store)
}

/// Creates an admin key if there is no active one, and returns it; `None` when one
/// exists already. The key is shown only here: store it.
pub async fn ensure_admin_key(store: &dyn Store) -> Result<Option<Pak>, ServeError> {
    let active = store
        .active_api_keys(KeyOwner::Admin)
        .await
        .map_err(ServeError::AdminKey)?;
    if !active.is_empty() {
        return Ok(None);
    }
    let pak = Pak::generate();
    store
        .rotate_api_key(&Actor::System, KeyOwner::Admin, pak.stored())
        .await
        .map_err(ServeError::AdminKey)?;
    Ok(Some(pak))
}

/// A bound server, not yet serving: its address is known, so a test can bind to
/// `127.0.0.1:0` and then send requests.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    admin_key: Option<Pak>,
    tls: Option<Reloader>,
}

impl Server {
    /// Opens the store from `config`, binds `config.server.listen`, then creates the
    /// admin key if there is none (so a start that cannot bind stores no key).
    pub async fn bind(config: Config, generators: GeneratorRegistry) -> Result<Self, ServeError> {
        let store = open_store(&config.database).await?;
        Self::bind_with_store(Arc::new(store), config, generators).await
    }

    /// [`Server::bind`] over a store of your own.
    pub async fn bind_with_store(
        store: Arc<dyn Store>,
        config: Config,
        generators: GeneratorRegistry,
    ) -> Result<Self, ServeError> {
        let control_plane = config.control_plane(store, generators);
        Self::bind_with_control_plane(control_plane, config).await
    }

    /// [`Server::bind`] over a control plane you built: your own store, placements,
    /// generators and settings. `config` gives the server's own settings (listen
    /// address, body limit, shutdown grace); its database section is not used.
    pub async fn bind_with_control_plane(
        control_plane: ControlPlane,
        config: Config,
    ) -> Result<Self, ServeError> {
        let tls = config
            .server
            .tls
            .as_ref()
            .map(|tls| {
                let files = PairFiles {
                    cert: tls.cert_file.clone(),
                    key: tls.key_file.clone(),
                };
                Reloader::load(files, tls.reload_period())
            })
            .transpose()
            .map_err(ServeError::Tls)?;
        // Bind before creating the admin key: a key stored by a start that then fails
        // to bind would never be printed, and the next start would not create one.
        let listen = config.server.listen.clone();
        let bind_error = |source| ServeError::Bind {
            addr: listen.clone(),
            source,
        };
        let listener = TcpListener::bind(listen.as_str())
            .await
            .map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let admin_key = ensure_admin_key(control_plane.store().as_ref()).await?;
        if tls.is_none() && !addr.ip().is_loopback() {
            tracing::warn!(
                %addr,
                "serving plain HTTP beyond this machine: keys travel unencrypted; \
                 configure [server.tls] or put a TLS proxy in front"
            );
        }
        Ok(Self {
            listener,
            addr,
            state: AppState::with_control_plane(control_plane, config),
            admin_key,
            tls,
        })
    }

    /// The address actually bound (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state the server will serve with.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The admin key created by [`Server::bind`], if it had to create one. Taking it
    /// leaves `None`: the key exists nowhere else.
    pub fn take_admin_key(&mut self) -> Option<Pak> {
        self.admin_key.take()
    }

    /// Serves until `shutdown` completes, then stops accepting connections, lets
    /// in-flight requests finish for up to `server.shutdown_grace_secs`, and writes
    /// the heartbeats still pending.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Self {
            listener,
            state,
            addr,
            tls,
            ..
        } = self;
        let background = state.control_plane.start();
        let acceptors = tls.map(|reloader| {
            let acceptors = reloader.acceptors();
            // It ends when the connection loop drops the last `Acceptors`.
            tokio::spawn(reloader.run());
            acceptors
        });
        let scheme = if acceptors.is_some() { "https" } else { "http" };
        tracing::info!(%addr, scheme, "listening");
        log_webhooks(&state);
        let grace = Duration::from_secs(state.config.server.shutdown_grace_secs);
        let draining = state.clone();
        let shutdown = async move {
            shutdown.await;
            draining.control_plane.begin_draining();
        };
        let limits = state.config.server.connection_limits();
        let app = crate::app::app(state.clone());
        crate::connections::serve(listener, app, limits, acceptors, shutdown, grace).await;
        background.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Says at start whether webhooks are sent, and where they may go.
fn log_webhooks(state: &AppState) {
    let settings = &state.control_plane.settings().webhooks;
    match (&settings.keyring, state.control_plane.sends_webhooks()) {
        (Some(keyring), true) => {
            let allowed: Vec<String> = settings
                .allowlist
                .patterns()
                .iter()
                .map(ToString::to_string)
                .collect();
            tracing::info!(
                sealing_key = keyring.sealing_key_id(),
                allowed_hosts = %allowed.join(","),
                "webhooks on"
            );
            if allowed.is_empty() {
                tracing::warn!(
                    "webhooks are on but [webhooks] allowed_hosts is empty: no subscription can be made"
                );
            }
        }
        (Some(_), false) => tracing::warn!(
            "webhook subscriptions can be made but nothing sends them: the control plane has no webhook sender"
        ),
        (None, _) => tracing::info!("webhooks off: [webhooks] keys is empty"),
    }
}

/// Runs the server from `config` until `shutdown` completes: opens the store, prints
/// the admin key on stdout if it had to create one, serves on `server.listen`.
pub async fn serve(
    config: Config,
    generators: GeneratorRegistry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let mut server = Server::bind(config, generators).await?;
    match server.take_admin_key() {
        Some(key) => print_admin_key(&key),
        None => tracing::info!("{ADMIN_KEY_EXISTS}"),
    }
    server.run(shutdown).await
}

/// What a start says when the database holds an admin key already: it was shown once,
/// when it was created, and only a new one can be shown.
pub const ADMIN_KEY_EXISTS: &str = "an admin key exists already (it was shown once, when it was created); \
     to get a new one, run `brokkr-server rotate admin` (this revokes the current one)";

/// The one line that shows a new admin key.
pub(crate) fn print_admin_key(key: &Pak) {
    println!("admin key (shown once): {}", key.expose());
}
