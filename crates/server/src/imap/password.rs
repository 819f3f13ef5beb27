//! Password checks for LOGIN and AUTHENTICATE, wherever the users file is
//! read.
//!
//! A single-process server and the supervisor read the users file
//! themselves. A worker process never opens it: one parsed copy of a large
//! passwd-file per worker would cost gigabytes across dozens of workers,
//! so a worker asks the supervisor over its link instead. [`PasswordCheck`]
//! hides which of the two a session talks to.

use std::sync::Arc;
use std::time::Duration;

use roost_auth::{Secret, UserDb};
use roost_governor::Ticket;
use tokio::sync::Semaphore;

use super::control::SessionTable;
use crate::workers::link::{NoAnswer, SupervisorLink};

/// The place where this server instance checks passwords.
pub enum PasswordCheck {
    /// In this process, against its own copy of the users file: a
    /// single-process server or the supervisor.
    Local(Arc<UserDb>),
    /// In the supervisor; this is a worker that asks it.
    Supervisor(Arc<SupervisorLink>),
}

/// The result of a password check.
#[derive(Debug)]
pub enum Verification {
    /// The password matches. `groups` are the user's groups from the
    /// passwd-file when this process reads it. From the supervisor they are
    /// empty, because it adds them itself when it decides a worker's login.
    Verified { groups: Vec<String> },
    /// The login is rejected: unknown user, wrong or over-long password, or
    /// a stored hash that cannot be verified. `reason` is for the log only;
    /// the client learns nothing beyond `AUTHENTICATIONFAILED`.
    Rejected { reason: String },
    /// Nobody could check the password: the supervisor did not answer.
    Unavailable(NoAnswer),
}

impl PasswordCheck {
    /// Checks the password of `name`. A local check runs on the blocking
    /// pool and waits for one of `permits` first; a worker's check waits
    /// for the supervisor, which applies its own permits.
    pub async fn verify(&self, permits: &Semaphore, name: &str, password: Secret) -> Verification {
        match self {
            PasswordCheck::Local(users) => verify_local(users, permits, name, password).await,
            PasswordCheck::Supervisor(link) => match link.verify(name, password).await {
                Ok(None) => Verification::Verified { groups: Vec::new() },
                Ok(Some(reason)) => Verification::Rejected { reason },
                Err(no_answer) => Verification::Unavailable(no_answer),
            },
        }
    }

    /// Records a failed login that claimed the name `name` and returns how
    /// long to hold back the `NO`. Failures count against the source and,
    /// when the users file has `name`, against that user; only the process
    /// that reads the file can tell, so a worker leaves it to the
    /// supervisor.
    pub async fn login_failed(&self, sessions: &SessionTable, ticket: Ticket, name: &str) -> Duration {
        let charged = match self {
            PasswordCheck::Local(users) => users.exists(name).then_some(name),
            PasswordCheck::Supervisor(_) => Some(name),
        };
        sessions.login_failed(ticket, charged).await
    }
}

/// Checks a password against `users` on the blocking pool, at most as many
/// at once as `permits` allows. The supervisor runs its workers' checks
/// through here too, under the same permits.
pub async fn verify_local(users: &Arc<UserDb>, permits: &Semaphore, name: &str, password: Secret) -> Verification {
    let _permit = permits.acquire().await;
    let users = Arc::clone(users);
    let name = name.to_owned();
    let checked = tokio::task::spawn_blocking(move || {
        users.verify(&name, &password)?;
        Ok::<_, roost_auth::AuthError>(users.groups(&name))
    })
    .await;
    match checked {
        Ok(Ok(groups)) => Verification::Verified { groups },
        Ok(Err(err)) => Verification::Rejected { reason: err.to_string() },
        Err(_) => Verification::Rejected { reason: "password check task failed".to_owned() },
    }
}
