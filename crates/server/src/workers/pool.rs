//! The supervisor's pool of worker processes.
//!
//! The supervisor accepts every connection and asks the governor about it;
//! an admitted connection's socket goes to the least loaded worker over
//! that worker's seqpacket socket. Workers are started as the sessions
//! need them, up to the configured number, and a worker that dies is
//! started again after its tickets are released, so only its own sessions
//! are lost. The supervisor alone reads the users file: it checks its
//! workers' passwords and looks up their users' groups.

use std::ffi::OsString;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roost_auth::UserDb;
use roost_governor::{Reason, Ticket};
use tokio::sync::watch;
use tokio_seqpacket::UnixSeqpacket;
use tokio_seqpacket::ancillary::AncillaryMessageWriter;
use tracing::{error, info, warn};

use super::message::{MESSAGE_BYTES_MAX, ToSupervisor, ToWorker, wipe_bytes};
use crate::imap::ImapContext;
use crate::imap::control::SessionTable;
use crate::imap::password::{self, Verification};
use crate::imap::session::Listener;

/// Descriptor number of the worker's socket to the supervisor in a worker.
pub const WORKER_SOCKET_FD: i32 = 3;
/// Descriptor number of the phase board's shared memory in a worker.
pub const WORKER_PHASES_FD: i32 = 4;
/// Environment variable that marks a worker process and names its index.
pub const WORKER_ENV: &str = "ROOST_WORKER";

/// How to start a worker: the program and its arguments. The `roost`
/// binary passes itself with the arguments it was started with, and the
/// worker reads the same configuration.
#[derive(Clone, Debug)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

/// The worker settings the supervisor runs with.
#[derive(Clone, Debug)]
pub struct PoolSettings {
    pub command: WorkerCommand,
    /// Most worker processes.
    pub workers_max: usize,
    /// Most connections one worker holds.
    pub connections_per_worker_max: usize,
}

struct WorkerSlot {
    socket: Option<Arc<UnixSeqpacket>>,
    pid: Option<u32>,
    connections: usize,
    /// Waits for the worker's response to the last `ReloadTls`.
    reload: Option<tokio::sync::oneshot::Sender<bool>>,
}

/// The worker of each ticket. Tickets are small numbers the governor
/// reuses, so a vector indexed by ticket costs four bytes a connection,
/// where a hash map would cost several times that.
#[derive(Default)]
struct Owners {
    by_ticket: Vec<u32>,
}

impl Owners {
    const NONE: u32 = u32::MAX;

    fn insert(&mut self, ticket: Ticket, worker: usize) {
        let slot = ticket.0 as usize;
        if self.by_ticket.len() <= slot {
            self.by_ticket.resize(slot + 1, Self::NONE);
        }
        self.by_ticket[slot] = worker as u32;
    }

    fn get(&self, ticket: Ticket) -> Option<usize> {
        self.by_ticket.get(ticket.0 as usize).filter(|owner| **owner != Self::NONE).map(|owner| *owner as usize)
    }

    fn remove(&mut self, ticket: Ticket) -> Option<usize> {
        let owner = self.get(ticket)?;
        self.by_ticket[ticket.0 as usize] = Self::NONE;
        Some(owner)
    }

    /// Forgets and returns every ticket `worker` held.
    fn remove_worker(&mut self, worker: usize) -> Vec<Ticket> {
        let mut tickets = Vec::new();
        for (slot, owner) in self.by_ticket.iter_mut().enumerate() {
            if *owner == worker as u32 {
                *owner = Self::NONE;
                tickets.push(Ticket(slot as u32));
            }
        }
        tickets
    }
}

/// The supervisor's workers and which of them holds each ticket.
pub struct WorkerPool {
    settings: PoolSettings,
    /// The supervisor's own context, whose password permits the workers'
    /// checks share.
    ctx: Arc<ImapContext>,
    table: Arc<SessionTable>,
    /// The users file, read here on behalf of every worker.
    users: Arc<UserDb>,
    workers: Mutex<Vec<WorkerSlot>>,
    owners: Mutex<Owners>,
    shutdown: watch::Receiver<bool>,
}

impl WorkerPool {
    /// Starts the first worker.
    pub async fn start(
        settings: PoolSettings,
        ctx: Arc<ImapContext>,
        users: Arc<UserDb>,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<Arc<WorkerPool>> {
        let table = Arc::clone(&ctx.sessions);
        let pool = Arc::new(WorkerPool {
            settings,
            ctx,
            table: Arc::clone(&table),
            users,
            workers: Mutex::new(Vec::new()),
            owners: Mutex::new(Owners::default()),
            shutdown,
        });
        pool.spawn_worker(None)?;
        let reporting = Arc::downgrade(&pool);
        let _ = table.worker_loads.set(Box::new(move || {
            let Some(pool) = reporting.upgrade() else { return Vec::new() };
            let workers = pool.lock_workers();
            workers.iter().enumerate().filter(|(_, worker)| worker.socket.is_some()).map(|(index, worker)| (index, worker.connections)).collect()
        }));
        let evicting = Arc::downgrade(&pool);
        let _ = table.remote_evictions.set(Box::new(move |ticket, reason, retry_after| {
            if let Some(pool) = evicting.upgrade() {
                pool.evict(ticket, reason, retry_after);
            }
        }));
        Ok(pool)
    }

    /// Returns how many workers run now.
    pub fn worker_count(&self) -> usize {
        self.lock_workers().iter().filter(|worker| worker.socket.is_some()).count()
    }

    /// Returns the PIDs of the workers running now.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.lock_workers().iter().filter_map(|worker| worker.pid).collect()
    }

    fn lock_workers(&self) -> std::sync::MutexGuard<'_, Vec<WorkerSlot>> {
        self.workers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a worker in slot `index`, or in a new slot.
    fn spawn_worker(self: &Arc<Self>, index: Option<usize>) -> std::io::Result<usize> {
        let (ours, theirs) = UnixSeqpacket::pair()?;
        let phases = self
            .table
            .phases
            .file()
            .ok_or_else(|| std::io::Error::other("the phase board is not shared"))?
            .try_clone()?;
        let mut workers = self.lock_workers();
        let index = index.unwrap_or(workers.len());

        let mut command = tokio::process::Command::new(&self.settings.command.program);
        command.args(&self.settings.command.args).env(WORKER_ENV, index.to_string()).kill_on_drop(true);
        let theirs_fd = theirs.as_raw_fd();
        let phases_fd = phases.as_raw_fd();
        // SAFETY: dup2 is async-signal-safe; between fork and exec it only
        // moves the two inherited descriptors to the numbers the worker
        // expects, without their close-on-exec flag.
        unsafe {
            command.pre_exec(move || {
                // Copies above 9 first, so that neither source can be one of
                // the target numbers; dup2 then clears close-on-exec.
                let socket = libc::fcntl(theirs_fd, libc::F_DUPFD_CLOEXEC, 10);
                let phases = libc::fcntl(phases_fd, libc::F_DUPFD_CLOEXEC, 10);
                if socket < 0
                    || phases < 0
                    || libc::dup2(socket, WORKER_SOCKET_FD) < 0
                    || libc::dup2(phases, WORKER_PHASES_FD) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn()?;
        drop(theirs);
        drop(phases);
        let pid = child.id();
        info!(worker = index, pid, "worker started");

        let socket = Arc::new(ours);
        let slot = WorkerSlot { socket: Some(Arc::clone(&socket)), pid, connections: 0, reload: None };
        if index < workers.len() {
            workers[index] = slot;
        } else {
            workers.push(slot);
        }
        drop(workers);

        let pool = Arc::clone(self);
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => Some(status),
                _ = pool.serve_worker(index, &socket) => None,
            };
            let status = match status {
                Some(status) => status,
                None => child.wait().await,
            };
            pool.worker_ended(index, status);
        });
        Ok(index)
    }

    /// Handles one worker's messages until its socket closes.
    async fn serve_worker(&self, index: usize, socket: &Arc<UnixSeqpacket>) {
        let mut buffer = vec![0u8; MESSAGE_BYTES_MAX];
        loop {
            let received = match socket.recv(&mut buffer).await {
                Ok(info) if info.bytes_read() == 0 => return,
                Ok(info) => info.bytes_read(),
                Err(err) => {
                    warn!(worker = index, error = %err, "failed to read from a worker");
                    return;
                }
            };
            let decoded = match std::str::from_utf8(&buffer[..received]) {
                Ok(text) => ToSupervisor::decode(text),
                Err(_) => Err("the message is not UTF-8".to_owned()),
            };
            // A password check leaves its password in the buffer.
            wipe_bytes(&mut buffer[..received]);
            let message = match decoded {
                Ok(message) => message,
                Err(err) => {
                    error!(worker = index, error = %err, "invalid message from a worker");
                    continue;
                }
            };
            if let Some(answer) = self.handle(index, socket, message).await {
                if let Err(err) = socket.send(answer.encode().as_bytes()).await {
                    warn!(worker = index, error = %err, "failed to send a response to a worker");
                    return;
                }
            }
        }
    }

    /// Checks a worker's password in a task of its own, so a slow hash
    /// holds up no other message from that worker, and sends the result.
    /// The check waits for the same permits as a login to this process.
    fn start_password_check(&self, index: usize, socket: &Arc<UnixSeqpacket>, request: u64, user: String, password: roost_auth::Secret) {
        let ctx = Arc::clone(&self.ctx);
        let users = Arc::clone(&self.users);
        let socket = Arc::clone(socket);
        tokio::spawn(async move {
            let rejection = match password::verify_local(&users, &ctx.password_checks, &user, password).await {
                Verification::Verified { .. } => None,
                Verification::Rejected { reason } => Some(reason),
                Verification::Unavailable(no_answer) => Some(no_answer.to_string()),
            };
            let answer = ToWorker::Verified { request, rejection }.encode();
            if let Err(err) = socket.send(answer.as_bytes()).await {
                warn!(worker = index, error = %err, "failed to send a password check result to a worker");
            }
        });
    }

    /// Handles one message and returns the answer to send. Messages that
    /// change the governor's state are handled in the order the worker
    /// sent them; a password check answers later, from its own task.
    async fn handle(&self, index: usize, socket: &Arc<UnixSeqpacket>, message: ToSupervisor) -> Option<ToWorker> {
        match message {
            ToSupervisor::Verify { request, user, password } => {
                self.start_password_check(index, socket, request, user, password);
                None
            }
            ToSupervisor::Login { request, ticket, user, mut groups } => {
                // The worker sends the configuration's groups, and the
                // passwd-file's groups= field is read here.
                groups.extend(self.file_groups(&user).await);
                let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
                let decision = self.table.decide_login_here(ticket, &user, &groups);
                Some(ToWorker::Login { request, decision })
            }
            ToSupervisor::LoginDelay { request, user } => {
                let delay = self.table.login_delay(&user).await.unwrap_or_default();
                Some(ToWorker::Delay { request, delay })
            }
            ToSupervisor::LoginFailed { request, ticket, user } => {
                let known = match user {
                    Some(user) if self.user_exists(&user).await => Some(user),
                    _ => None,
                };
                Some(ToWorker::Delay { request, delay: self.table.login_failed(ticket, known.as_deref()).await })
            }
            ToSupervisor::Identify { ticket, name } => {
                self.table.identify(ticket, &name);
                None
            }
            ToSupervisor::Release { ticket } => {
                self.release(index, ticket);
                None
            }
            ToSupervisor::Reloaded { ok } => {
                if let Some(waiter) = self.lock_workers().get_mut(index).and_then(|worker| worker.reload.take()) {
                    let _ = waiter.send(ok);
                }
                None
            }
        }
    }

    /// Returns the groups the passwd-file gives `user`. The lookup may
    /// reread the users file, so it runs on the blocking pool.
    async fn file_groups(&self, user: &str) -> Vec<String> {
        let users = Arc::clone(&self.users);
        let user = user.to_owned();
        tokio::task::spawn_blocking(move || users.groups(&user)).await.unwrap_or_default()
    }

    /// Returns whether the users file has `user`, on the blocking pool like
    /// [`Self::file_groups`].
    async fn user_exists(&self, user: &str) -> bool {
        let users = Arc::clone(&self.users);
        let user = user.to_owned();
        tokio::task::spawn_blocking(move || users.exists(&user)).await.unwrap_or(false)
    }

    fn release(&self, index: usize, ticket: Ticket) {
        let owned = self.owners.lock().unwrap_or_else(|e| e.into_inner()).remove(ticket);
        if owned == Some(index) {
            if let Some(worker) = self.lock_workers().get_mut(index) {
                worker.connections = worker.connections.saturating_sub(1);
            }
            self.table.abandon(ticket);
        }
    }

    /// Releases every ticket of a worker that ended, and starts a new one
    /// in its place unless the server is shutting down.
    fn worker_ended(self: &Arc<Self>, index: usize, status: std::io::Result<std::process::ExitStatus>) {
        let orphans: Vec<Ticket> = {
            let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
            owners.remove_worker(index)
        };
        for ticket in &orphans {
            self.table.abandon(*ticket);
        }
        if let Some(worker) = self.lock_workers().get_mut(index) {
            worker.socket = None;
            worker.pid = None;
            worker.connections = 0;
        }
        if *self.shutdown.borrow() {
            info!(worker = index, "worker stopped");
            return;
        }
        error!(worker = index, status = ?status, sessions_lost = orphans.len(), "worker ended unexpectedly; starting a new one");
        let pool = Arc::clone(self);
        tokio::spawn(async move {
            // A worker that fails at once would otherwise be restarted in a loop.
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Err(err) = pool.spawn_worker(Some(index)) {
                error!(worker = index, error = %err, "failed to start a worker");
            }
        });
    }

    /// Picks the worker for a new connection: the least loaded one with
    /// room, starting a new worker when all are full and more are allowed.
    fn choose_worker(self: &Arc<Self>) -> Option<(usize, Arc<UnixSeqpacket>)> {
        {
            let mut workers = self.lock_workers();
            let max = self.settings.connections_per_worker_max;
            let best = workers
                .iter()
                .enumerate()
                .filter(|(_, worker)| worker.socket.is_some() && worker.connections < max)
                .min_by_key(|(_, worker)| worker.connections)
                .map(|(index, _)| index);
            let room_elsewhere = workers.len() < self.settings.workers_max;
            if let Some(index) = best {
                // Start the next worker before this one is full, so the
                // start does not delay a connection.
                let nearly_full = workers[index].connections + 1 >= max * 9 / 10;
                let worker = &mut workers[index];
                worker.connections += 1;
                let socket = Arc::clone(worker.socket.as_ref()?);
                drop(workers);
                if nearly_full && room_elsewhere && self.worker_count() == self.lock_workers().len() {
                    if let Err(err) = self.spawn_worker(None) {
                        error!(error = %err, "failed to start a worker");
                    }
                }
                return Some((index, socket));
            }
            if !room_elsewhere {
                return None;
            }
        }
        let index = match self.spawn_worker(None) {
            Ok(index) => index,
            Err(err) => {
                error!(error = %err, "failed to start a worker");
                return None;
            }
        };
        let mut workers = self.lock_workers();
        let worker = &mut workers[index];
        worker.connections += 1;
        Some((index, Arc::clone(worker.socket.as_ref()?)))
    }

    /// Hands an admitted connection to a worker. On failure the ticket is
    /// released and the connection closed.
    pub async fn hand_over(self: &Arc<Self>, stream: OwnedFd, ticket: Ticket, peer: SocketAddr, listener: Listener, delay: Duration) {
        let Some((index, socket)) = self.choose_worker() else {
            warn!(%peer, "no worker has room for a connection; closing it");
            self.table.abandon(ticket);
            return;
        };
        self.owners.lock().unwrap_or_else(|e| e.into_inner()).insert(ticket, index);
        let message = ToWorker::Connection { ticket, peer, listener, delay }.encode();
        let mut attachment = [0u8; 64];
        let mut ancillary = AncillaryMessageWriter::new(&mut attachment);
        let sent = match ancillary.add_fds(&[stream.as_fd()]) {
            Ok(()) => socket.send_vectored_with_ancillary(&[IoSlice::new(message.as_bytes())], &mut ancillary).await,
            Err(err) => Err(std::io::Error::other(format!("{err:?}"))),
        };
        // The worker holds its own copy of the descriptor now.
        drop(stream);
        if let Err(err) = sent {
            warn!(worker = index, %peer, error = %err, "failed to hand a connection to a worker");
            self.release(index, ticket);
        }
    }

    fn evict(self: &Arc<Self>, ticket: Ticket, reason: Reason, retry_after: Duration) {
        let Some(index) = self.owners.lock().unwrap_or_else(|e| e.into_inner()).get(ticket) else { return };
        let Some(socket) = self.lock_workers().get(index).and_then(|worker| worker.socket.clone()) else { return };
        let message = ToWorker::Evict { ticket, reason, retry_after }.encode();
        tokio::spawn(async move {
            if let Err(err) = socket.send(message.as_bytes()).await {
                warn!(worker = index, error = %err, "failed to send an eviction to a worker");
            }
        });
    }

    /// Tells every worker to end its sessions and exit.
    pub async fn shutdown(&self) {
        let sockets: Vec<Arc<UnixSeqpacket>> = self.lock_workers().iter().filter_map(|worker| worker.socket.clone()).collect();
        for socket in sockets {
            let _ = socket.send(ToWorker::Shutdown.encode().as_bytes()).await;
        }
    }

    /// Waits until every worker process has exited. The supervisor must not
    /// exit before its workers: their handles kill them when dropped, which
    /// would cut sessions before they get their BYE.
    pub async fn exited(&self) {
        while !self.worker_pids().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Makes every worker reread the TLS certificate and waits for their
    /// answers, so that once this returns every new connection gets the
    /// new certificate. Returns how many workers failed or did not answer.
    pub async fn reload_tls(&self) -> usize {
        let mut answers = Vec::new();
        let sockets: Vec<(usize, Arc<UnixSeqpacket>)> = {
            let mut workers = self.lock_workers();
            workers
                .iter_mut()
                .enumerate()
                .filter_map(|(index, worker)| {
                    let socket = worker.socket.clone()?;
                    let (waiter, answer) = tokio::sync::oneshot::channel();
                    worker.reload = Some(waiter);
                    answers.push((index, answer));
                    Some((index, socket))
                })
                .collect()
        };
        for (index, socket) in sockets {
            if let Err(err) = socket.send(ToWorker::ReloadTls.encode().as_bytes()).await {
                warn!(worker = index, error = %err, "failed to ask a worker to reload TLS");
            }
        }
        let mut failed = 0;
        for (index, answer) in answers {
            match tokio::time::timeout(Duration::from_secs(10), answer).await {
                Ok(Ok(true)) => {}
                _ => {
                    warn!(worker = index, "a worker did not reload the TLS certificate");
                    failed += 1;
                }
            }
        }
        failed
    }
}

/// Takes the descriptors a worker inherits: its socket to the supervisor
/// and the phase board's shared memory file.
///
/// # Safety
/// Only in a worker process the pool started, once: the supervisor put
/// those descriptors at [`WORKER_SOCKET_FD`] and [`WORKER_PHASES_FD`], and
/// nothing else in the process owns them.
pub unsafe fn inherited_descriptors() -> std::io::Result<(UnixSeqpacket, std::fs::File)> {
    use std::os::fd::FromRawFd;
    // SAFETY: upheld by the caller, as documented above.
    let (socket, phases) = unsafe { (OwnedFd::from_raw_fd(WORKER_SOCKET_FD), OwnedFd::from_raw_fd(WORKER_PHASES_FD)) };
    Ok((UnixSeqpacket::try_from(socket)?, std::fs::File::from(phases)))
}
