//! Roost's server: the IMAP and LMTP listeners, IMAP sessions and delivery.
//!
//! [`serve`] wires one server instance together from a [`Config`]: it opens
//! the store and the user database in the data folder, binds the listeners
//! and runs until its shutdown future completes. The server owns all of its
//! state through that instance (no process-wide singletons), so tests run
//! several servers in one process and sessions can later move to worker
//! processes.
//!
//! **Architecture Invariant:** this crate never parses IMAP or MIME itself
//! (that is `roost-proto` and `roost-mime`) and never touches SQL (that is
//! `roost-store`). It never reads configuration files or flags; the `roost`
//! binary builds the [`Config`].

pub mod admin;
pub mod config;
pub mod delivery;
pub mod imap;
pub mod lmtp;
pub mod metrics;
pub mod proxy_protocol;
pub mod tasks;
pub mod tls;
pub mod transport;
pub mod workers;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use roost_auth::UserDb;
use roost_store::MailStore;
use roost_store::sqlite::{SqliteOptions, SqliteStore};
use tls::TlsAcceptor;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use config::Config;

/// Runs a server until `shutdown` completes, then stops it (see
/// [`Running::stop`]).
pub async fn serve(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let running = start(config).await?;
    shutdown.await;
    running.stop().await;
    Ok(())
}

/// Returns the embedded store's options, with the limits the configuration sets.
pub fn store_options(limits: &config::Limits) -> SqliteOptions {
    SqliteOptions {
        mailbox_name_bytes_max: limits.mailbox_name_bytes_max,
        mailboxes_per_account_max: limits.mailboxes_per_account_max,
        reader_cache_bytes: limits.store_reader_cache_bytes as u64,
        ..SqliteOptions::default()
    }
}

/// A started server.
pub struct Running {
    /// Bound address of the IMAP listener, if it is on.
    pub imap_address: Option<SocketAddr>,
    /// Bound address of the implicit-TLS IMAP listener, if it is on.
    pub imaps_address: Option<SocketAddr>,
    /// Bound address of the LMTP listener, if it is on.
    pub lmtp_address: Option<SocketAddr>,
    /// Bound address of the metrics listener, if it is on.
    pub metrics_address: Option<SocketAddr>,
    config: Arc<Config>,
    tls: Arc<TlsAcceptor>,
    shutdown_sender: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    sweeper: JoinHandle<()>,
    pool: Option<Arc<workers::WorkerPool>>,
}

/// Largest listen backlog asked for; the kernel caps it at
/// `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 65_535;

/// Binds a listener with a backlog deep enough for a reconnect storm:
/// connections the kernel completed wait there until Roost accepts them,
/// and an overflow makes clients retry their SYN a second later.
async fn bind_listener(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Returns the number of phase board slots: every ticket the governor can
/// hand out, with room for sessions that are being closed.
fn phase_board_len(config: &Config) -> usize {
    let policy = &config.governor.policy;
    let tickets = u64::from(policy.max_sessions) + u64::from(policy.max_preauth);
    usize::try_from(tickets + tickets / 4 + 1024).unwrap_or(usize::MAX)
}

/// Opens the store, the users and the TLS configuration of the data folder.
pub(crate) async fn open_data(config: &Config) -> anyhow::Result<(Arc<dyn MailStore>, Arc<UserDb>, Arc<TlsAcceptor>)> {
    let store = open_store(config).await?;
    let data_dir = config.data_dir.clone();
    let users = tokio::task::spawn_blocking(move || {
        UserDb::open(&data_dir).with_context(|| format!("failed to open the users in {}", data_dir.display()))
    })
    .await??;
    let users = Arc::new(users);
    if users.is_empty() {
        info!(
            "no users yet; add one with: roost user add NAME --data-dir {}",
            config.data_dir.display()
        );
    }
    let tls = open_tls(config).await?;
    Ok((store, users, tls))
}

/// Opens the store in the data folder, creating the folder if needed.
pub(crate) async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn MailStore>> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("failed to create the data folder {}", config.data_dir.display()))?;
    let data_dir = config.data_dir.clone();
    let limits = config.limits.clone();
    let store = tokio::task::spawn_blocking(move || {
        SqliteStore::open_with(&data_dir, store_options(&limits))
            .with_context(|| format!("failed to open the store in {}", data_dir.display()))
    })
    .await??;
    info!(data_dir = %config.data_dir.display(), "store opened");
    Ok(Arc::new(store))
}

/// Loads the TLS configuration: the configured certificate, or the
/// development certificate in the data folder.
pub(crate) async fn open_tls(config: &Config) -> anyhow::Result<Arc<TlsAcceptor>> {
    // Loading reads, and on first start writes, certificate files.
    let tls_settings = config.tls.settings.clone();
    let data_dir = config.data_dir.clone();
    let tls = tokio::task::spawn_blocking(move || TlsAcceptor::load(&tls_settings, &data_dir))
        .await?
        .context("failed to set up TLS")?;
    Ok(Arc::new(tls))
}

/// Returns the session timers the sweeper applies.
pub(crate) fn timeouts(config: &Config) -> imap::control::Timeouts {
    imap::control::Timeouts {
        unauthenticated: config.imap.timeout_unauthenticated,
        authenticated: config.imap.timeout_authenticated,
        idle_keepalive: config.imap.idle_keepalive,
    }
}

/// Opens the store and users in the data folder and binds the listeners.
/// With a worker command configured, this process becomes the supervisor
/// and its sessions run in worker processes.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let config = Arc::new(config);
    let (store, users, tls) = open_data(&config).await?;

    let (shutdown_sender, shutdown_receiver) = watch::channel(false);
    let governor = roost_governor::Governor::new(config.governor.policy.clone());
    let phases = Arc::new(workers::phases::PhaseBoard::create(phase_board_len(&config)).context("failed to create the phase board")?);
    let table = imap::control::SessionTable::new(governor, phases);
    let passwords = imap::password::PasswordCheck::Local(Arc::clone(&users));
    let imap_context = imap::ImapContext::with_table(Arc::clone(&store), passwords, Arc::clone(&config), Arc::clone(&tls), table);
    let sweeper = tokio::spawn(Arc::clone(&imap_context.sessions).run_sweeper(timeouts(&config)));
    let pool = match &config.workers.command {
        Some(command) => {
            let settings = workers::PoolSettings {
                command: command.clone(),
                workers_max: config.workers.workers_max.max(1),
                connections_per_worker_max: config.workers.connections_per_worker_max.max(1),
            };
            let pool = workers::WorkerPool::start(settings, Arc::clone(&imap_context), Arc::clone(&users), shutdown_receiver.clone())
                .await
                .context("failed to start a worker process")?;
            Some(pool)
        }
        None => None,
    };
    let dispatch = match &pool {
        Some(pool) => imap::Dispatch::Workers(Arc::clone(pool)),
        None => imap::Dispatch::Local,
    };

    let mut tasks = Vec::new();
    let mut imap_address = None;
    if let Some(address) = config.imap_listen {
        let listener = bind_listener(address)
            .await
            .with_context(|| format!("failed to listen for IMAP on {address}"))?;
        let bound = listener.local_addr()?;
        info!(address = %bound, "IMAP listening");
        imap_address = Some(bound);
        let kind = imap::session::Listener::Plain;
        let serving = imap::serve(listener, kind, Arc::clone(&imap_context), dispatch.clone(), shutdown_receiver.clone());
        tasks.push(tokio::spawn(serving));
    }
    let mut imaps_address = None;
    if let Some(address) = config.imaps_listen {
        let listener = bind_listener(address)
            .await
            .with_context(|| format!("failed to listen for IMAP over TLS on {address}"))?;
        let bound = listener.local_addr()?;
        info!(address = %bound, "IMAP over TLS listening");
        imaps_address = Some(bound);
        let kind = imap::session::Listener::ImplicitTls;
        let serving = imap::serve(listener, kind, Arc::clone(&imap_context), dispatch.clone(), shutdown_receiver.clone());
        tasks.push(tokio::spawn(serving));
    }
    let mut lmtp_address = None;
    if let Some(address) = config.lmtp_listen {
        let listener = bind_listener(address)
            .await
            .with_context(|| format!("failed to listen for LMTP on {address}"))?;
        let bound = listener.local_addr()?;
        info!(address = %bound, "LMTP listening");
        lmtp_address = Some(bound);
        let deliverer = Arc::new(delivery::Deliverer::new(Arc::clone(&store), Arc::clone(&users), &config));
        tasks.push(tokio::spawn(lmtp::serve(listener, deliverer, Arc::clone(&config), shutdown_receiver.clone())));
    }
    let mut metrics_address = None;
    if let Some(address) = config.metrics_listen {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("failed to listen for metrics on {address}; set metrics_listen to another address or \"off\""))?;
        let bound = listener.local_addr()?;
        info!(address = %bound, "metrics listening");
        metrics_address = Some(bound);
        let sessions = Arc::clone(&imap_context.sessions);
        let render: metrics::RenderMetrics = Arc::new(move || sessions.render_metrics());
        tasks.push(tokio::spawn(metrics::serve_metrics(listener, render, shutdown_receiver.clone())));
    }
    let admin_listener = admin::bind_admin(&config.data_dir)?;
    let sessions = Arc::clone(&imap_context.sessions);
    let handler = admin::Commands::new().add("who", move |_| Ok(admin::format_who(&sessions.who()))).into_handler();
    tasks.push(tokio::spawn(admin::serve_admin(admin_listener, handler, shutdown_receiver.clone())));
    Ok(Running { imap_address, imaps_address, lmtp_address, metrics_address, config, tls, shutdown_sender, tasks, sweeper, pool })
}

impl Running {
    /// Rereads the TLS certificate and key (on SIGHUP). New handshakes use
    /// the new certificate; sessions keep theirs. A reload that fails keeps
    /// the current certificate and returns the error.
    pub async fn reload_tls(&self) -> anyhow::Result<()> {
        let tls = Arc::clone(&self.tls);
        let result = tokio::task::spawn_blocking(move || tls.reload()).await?;
        // Each worker holds its own TLS configuration; they reload after
        // this process, so a certificate this reload generated is the one
        // they read.
        let failed_workers = match (&result, &self.pool) {
            (Ok(()), Some(pool)) => pool.reload_tls().await,
            _ => 0,
        };
        if failed_workers > 0 {
            anyhow::bail!("{failed_workers} worker processes kept the old TLS certificate");
        }
        match result {
            Ok(()) => {
                info!(fingerprint = %self.tls.fingerprint(), "TLS certificate reloaded");
                Ok(())
            }
            Err(err) => {
                warn!(error = %err, "TLS reload failed; keeping the current certificate");
                Err(err.into())
            }
        }
    }

    /// Returns the PIDs of the worker processes running now; empty for a
    /// single-process server.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.pool.as_ref().map(|pool| pool.worker_pids()).unwrap_or_default()
    }

    /// Returns the SHA-256 fingerprint of the certificate new TLS sessions get.
    pub fn tls_fingerprint(&self) -> String {
        self.tls.fingerprint()
    }

    /// Says BYE to every IMAP session, lets LMTP deliveries in progress
    /// finish, and returns within the configured shutdown grace.
    pub async fn stop(self) {
        info!("shutting down");
        let _ = self.shutdown_sender.send(true);
        if let Some(pool) = &self.pool {
            pool.shutdown().await;
        }
        let tasks = self.tasks;
        let pool = self.pool.clone();
        let finished = async {
            for task in tasks {
                let _ = task.await;
            }
            if let Some(pool) = pool {
                pool.exited().await;
            }
        };
        if tokio::time::timeout(self.config.shutdown_grace, finished).await.is_err() {
            warn!(grace = ?self.config.shutdown_grace, "sessions still open after the shutdown grace period; exiting anyway");
        }
        self.sweeper.abort();
        info!("stopped");
    }
}
