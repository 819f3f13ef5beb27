//! Worker processes: the supervisor keeps the listeners and the governor,
//! and hands admitted connections to workers that hold the sessions.
//!
//! A process may hold only as many descriptors as its `RLIMIT_NOFILE`
//! allows (20,000 on some hosts, with no way to raise it), so a million
//! sessions need many processes. The supervisor passes each admitted
//! socket to a worker over a Unix seqpacket socket (`SCM_RIGHTS`). Workers
//! ask the supervisor at login and report sessions that end, and write
//! each session's phase into a shared [`phases::PhaseBoard`], so the one
//! governor still sees every session.
//!
//! Code map:
//! - [`pool`]: the supervisor's side, starting, feeding and restarting
//!   workers.
//! - [`worker`]: a worker's main loop.
//! - [`link`]: a worker's requests to the supervisor.
//! - [`message`]: what goes over the socket.
//! - [`phases`]: the shared phase board.

pub mod link;
pub mod message;
pub mod phases;
pub mod pool;
pub mod worker;

pub use pool::{PoolSettings, WorkerCommand, WorkerPool};
pub use worker::run_worker;
