//! LOGIN and AUTHENTICATE PLAIN (RFC 4616, with RFC 4959 SASL-IR).
//!
//! Password checks run on the blocking pool, at most
//! [`CONCURRENT_PASSWORD_CHECKS`](crate::imap::CONCURRENT_PASSWORD_CHECKS)
//! at a time, in this process or, for a worker, in the supervisor (see
//! [`crate::imap::password`]). Passwords travel only inside
//! [`roost_auth::Secret`] and are never logged.

use std::sync::Arc;

use base64::Engine as _;
use roost_auth::Secret;
use roost_proto::types::auth::{AuthMechanism, AuthenticateData};
use roost_proto::types::core::{AString, Tag};
use roost_proto::types::secret::Secret as WireSecret;
use roost_governor::LoginDecision;
use tracing::{debug, info, warn};

use super::{Outcome, Reply, bad, no, ok_code};
use crate::imap::output::{Output, Status};
use crate::imap::password::Verification;
use crate::imap::session::{Account, Flow, Pending, Session, State};
use crate::workers::link::NoAnswer;

const TOO_MANY_FAILURES: &str = "Too many failed logins";

pub async fn login(session: &mut Session, username: AString<'static>, password: WireSecret<AString<'static>>) -> Outcome {
    if !session.security.login_allowed() {
        return privacy_required();
    }
    let Ok(name) = String::from_utf8(username.as_ref().to_vec()) else {
        return failed_login(session, "<not UTF-8>", "user name is not UTF-8").await;
    };
    let Ok(password) = String::from_utf8(password.declassify().as_ref().to_vec()) else {
        return failed_login(session, &name, "password is not UTF-8").await;
    };
    check_password(session, name, Secret::new(password)).await
}

pub async fn authenticate(
    session: &mut Session,
    tag: Tag<'static>,
    mechanism: AuthMechanism<'static>,
    initial_response: Option<WireSecret<std::borrow::Cow<'static, [u8]>>>,
    out: &mut Output,
) -> Outcome {
    if !session.security.login_allowed() {
        return privacy_required();
    }
    if mechanism != AuthMechanism::Plain {
        return no(Some("CANNOT"), format!("Mechanism {mechanism} is not supported"));
    }
    match initial_response {
        Some(response) => plain(session, response.declassify()).await,
        None => {
            out.line("+ ");
            session.pending = Pending::Authenticate(tag);
            Outcome::Continued
        }
    }
}

/// Handles the client's response to the AUTHENTICATE continuation.
pub async fn authenticate_data(session: &mut Session, data: AuthenticateData<'static>, out: &mut Output) -> Flow {
    let Pending::Authenticate(tag) = std::mem::replace(&mut session.pending, Pending::None) else {
        out.untagged("BAD Unexpected authentication data");
        return Flow::Continue;
    };
    let outcome = match data {
        AuthenticateData::Cancel => bad("AUTHENTICATE cancelled"),
        AuthenticateData::Continue(response) => plain(session, response.declassify()).await,
    };
    match outcome {
        Outcome::Done(reply) => {
            out.status(Some(tag.inner()), reply.status, reply.code.as_deref(), &reply.text);
            Flow::Continue
        }
        Outcome::Close(reply) | Outcome::Disconnect(reply, _) => {
            out.status(Some(tag.inner()), reply.status, reply.code.as_deref(), &reply.text);
            out.untagged(&format!("BYE {TOO_MANY_FAILURES}"));
            Flow::Close
        }
        // PLAIN takes a single step, so no further continuation is sent,
        // and STARTTLS is not a response to AUTHENTICATE.
        Outcome::Continued | Outcome::StartTls => Flow::Continue,
    }
}

/// Checks a PLAIN response: `authzid NUL authcid NUL password` (RFC 4616).
/// The line arrives base64-decoded by the codec. Logging in as another user
/// (a non-empty authzid that differs) is not offered.
async fn plain(session: &mut Session, response: &[u8]) -> Outcome {
    // An empty initial response is sent as "=" (RFC 4959) and decodes to
    // nothing; PLAIN always carries two NULs, so it is malformed here too.
    let decoded = if response.contains(&0) {
        response.to_vec()
    } else {
        match base64::engine::general_purpose::STANDARD.decode(response) {
            Ok(bytes) => bytes,
            Err(_) => response.to_vec(),
        }
    };
    let mut fields = decoded.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) = (fields.next(), fields.next(), fields.next(), fields.next()) else {
        return bad("Malformed PLAIN response");
    };
    let (Ok(authzid), Ok(name), Ok(password)) = (
        std::str::from_utf8(authzid),
        String::from_utf8(authcid.to_vec()),
        String::from_utf8(password.to_vec()),
    ) else {
        return failed_login(session, "<not UTF-8>", "PLAIN response is not UTF-8").await;
    };
    if !authzid.is_empty() && authzid != name {
        return no(Some("AUTHORIZATIONFAILED"), "Logging in as another user is not permitted");
    }
    check_password(session, name, Secret::new(password)).await
}

async fn check_password(session: &mut Session, name: String, password: Secret) -> Outcome {
    let ctx = Arc::clone(&session.ctx);
    // Recent failed logins of this user slow every further attempt at it,
    // from any connection.
    let penalty = match ctx.sessions.login_delay(&name).await {
        Ok(penalty) => penalty,
        Err(no_answer) => return unavailable(session, &name, no_answer),
    };
    if !penalty.is_zero() {
        debug!(session = session.id, user = %name, ?penalty, "delaying a login after recent failures");
        tokio::time::sleep(penalty).await;
    }
    let groups = match ctx.passwords.verify(&ctx.password_checks, &name, password).await {
        Verification::Verified { groups } => groups,
        // The client gets only AUTHENTICATIONFAILED. The log records which
        // check failed, so an administrator can tell a typo from a guess.
        Verification::Rejected { reason } => return failed_login(session, &name, &reason).await,
        Verification::Unavailable(no_answer) => return unavailable(session, &name, no_answer),
    };
    if let Some(refused) = admit_login(session, &name, &groups).await {
        return refused;
    }
    let account = match ctx.store.account(&name, &ctx.config.imap.default_mailboxes).await {
        Ok(account) => account,
        Err(err) => return super::store_failure(session, err),
    };
    info!(session = session.id, peer = %session.peer, user = %name, "logged in");
    session.state = State::Authenticated(Box::new(Account { id: account, name: name.into_boxed_str() }));
    let capabilities = crate::imap::capabilities(session);
    ok_code(format!("CAPABILITY {capabilities}"), "Logged in")
}

/// Asks the governor whether the logged-in session may hold a slot.
/// Returns the response when it may not: `NO [UNAVAILABLE]` or `NO
/// [LIMIT]` with a retry hint (RFC 5530), leaving the connection
/// unauthenticated.
async fn admit_login(session: &Session, name: &str, groups_from_file: &[String]) -> Option<Outcome> {
    let ctx = &session.ctx;
    // Groups come from the config's [groups] table and the passwd-file's
    // groups= extra field.
    let from_config = ctx.config.governor.groups.get(name).into_iter().flatten();
    let groups: Vec<&str> = from_config.map(String::as_str).chain(groups_from_file.iter().map(String::as_str)).collect();
    match ctx.sessions.decide_login(session.ticket(), name, &groups).await {
        LoginDecision::Admit { .. } | LoginDecision::Preempt { .. } => None,
        LoginDecision::Refuse { refusal, .. } => {
            info!(session = session.id, peer = %session.peer, user = %name, reason = refusal.reason.label(), "login refused by the governor");
            Some(no(Some(refusal.code()), refusal.text()))
        }
    }
}

async fn failed_login(session: &mut Session, name: &str, reason: &str) -> Outcome {
    let max = session.ctx.config.limits.login_failures_max;
    // Failures count per source and, for an existing user, per user; the
    // growing delay holds back only this connection's NO.
    let ctx = Arc::clone(&session.ctx);
    let delay = ctx.passwords.login_failed(&ctx.sessions, session.ticket(), name).await;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let State::NotAuthenticated { failures } = &mut session.state else {
        return bad("Already logged in");
    };
    *failures += 1;
    let failures = *failures;
    warn!(session = session.id, peer = %session.peer, user = %name, failures, reason, "login failed");
    let reply = Reply {
        status: Status::No,
        code: Some("AUTHENTICATIONFAILED".to_owned()),
        text: "Invalid credentials".to_owned(),
    };
    if failures >= max {
        return Outcome::Disconnect(reply, TOO_MANY_FAILURES);
    }
    Outcome::Done(reply)
}

/// Returns the response to a login a worker could not get checked because
/// its supervisor did not answer. It does not count as a failed login.
fn unavailable(session: &Session, name: &str, no_answer: NoAnswer) -> Outcome {
    warn!(session = session.id, peer = %session.peer, user = %name, error = %no_answer, "login not checked: no answer from the supervisor");
    no(Some("UNAVAILABLE"), "Cannot check passwords now, try again later")
}

/// Returns the response to a login attempt in cleartext from an untrusted network
/// (RFC 3501 section 6.2.3, RFC 5530 PRIVACYREQUIRED).
fn privacy_required() -> Outcome {
    no(Some("PRIVACYREQUIRED"), "Use STARTTLS or the TLS port before logging in")
}
