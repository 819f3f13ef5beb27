//! Command handlers, one module per group of related commands.
//!
//! A handler writes untagged data to the [`Output`] and returns the tagged
//! result as an [`Outcome`]; the dispatcher sends pending mailbox updates
//! between the two, as RFC 3501 requires.

pub mod append;
pub mod auth;
pub mod fetch;
pub mod list;
pub mod mailbox;
pub mod messages;
pub mod misc;
pub mod search;
pub mod select;

use roost_proto::extended::{ExtendedCommand, SavedResultCommand};
use roost_proto::types::core::Tag;
use roost_proto::types::command::CommandBody;
use roost_store::StoreError;
use crate::transport::Transport;
use tracing::error;

use super::names::NameError;
use super::sequence::resolve_clamped;
use super::output::{Output, Status};
use super::session::{ClientCommand, Session};

/// The tagged response of a command.
pub struct Reply {
    pub status: Status,
    pub code: Option<String>,
    pub text: String,
}

/// The end state of a command.
pub enum Outcome {
    /// Send pending updates, then the tagged response.
    Done(Reply),
    /// A continuation request was sent (IDLE, AUTHENTICATE); the tagged
    /// response comes when the client responds to it.
    Continued,
    /// Send the tagged response and close the connection.
    Close(Reply),
    /// Send the tagged response, then `* BYE` with this text, and close.
    Disconnect(Reply, &'static str),
    /// Send the tagged OK to STARTTLS, then start the TLS handshake.
    StartTls,
}

pub fn ok(text: impl Into<String>) -> Outcome {
    Outcome::Done(Reply { status: Status::Ok, code: None, text: text.into() })
}

pub fn ok_code(code: impl Into<String>, text: impl Into<String>) -> Outcome {
    Outcome::Done(Reply { status: Status::Ok, code: Some(code.into()), text: text.into() })
}

pub fn no(code: Option<&str>, text: impl Into<String>) -> Outcome {
    Outcome::Done(Reply { status: Status::No, code: code.map(str::to_owned), text: text.into() })
}

pub fn bad(text: impl Into<String>) -> Outcome {
    Outcome::Done(Reply { status: Status::Bad, code: None, text: text.into() })
}

pub fn bad_code(code: &str, text: impl Into<String>) -> Outcome {
    Outcome::Done(Reply { status: Status::Bad, code: Some(code.to_owned()), text: text.into() })
}

/// Maps an invalid mailbox name to its tagged reply, the same in every
/// command that takes a mailbox name. A name that breaks the encoding
/// rules is a client error (BAD). A well-formed name past a configured
/// limit gets NO [LIMIT] (RFC 5530).
pub fn name_error(err: NameError) -> Outcome {
    match err {
        NameError::Encoding | NameError::EmptyLevel => bad(err.message()),
        NameError::TooLong { .. } | NameError::TooDeep { .. } => no(Some("LIMIT"), err.message()),
    }
}

/// Maps a store failure to the tagged NO a client can act on (RFC 5530
/// codes). Internal failures are logged with their cause, which is never
/// sent to the client.
pub fn store_failure(session: &Session, err: StoreError) -> Outcome {
    match err {
        StoreError::MailboxNotFound(_) | StoreError::MailboxGone(_) => no(Some("NONEXISTENT"), "No such mailbox"),
        StoreError::MailboxExists(_) => no(Some("ALREADYEXISTS"), "Mailbox already exists"),
        StoreError::Forbidden(why) => no(Some("CANNOT"), why),
        StoreError::LimitExceeded(why) => no(Some("LIMIT"), why),
        StoreError::Invalid(why) => no(Some("CANNOT"), why),
        other => {
            error!(session = session.id, error = %other, "store operation failed");
            no(Some("SERVERBUG"), "Internal error; the operation was not carried out")
        }
    }
}

/// The text of the BYE sent when the selected mailbox was deleted.
const SELECTED_MAILBOX_DELETED: &str = "Selected mailbox was deleted; log in again and select another mailbox";

/// Returns whether another session deleted the mailbox this session has
/// selected. The store wakes a mailbox's watchers when it deletes it, so
/// the store is asked only when the mailbox changed after the session's
/// view, which keeps this check off the common path.
pub async fn selected_mailbox_gone(session: &Session) -> bool {
    let Some(selected) = session.selected() else { return false };
    if selected.changes.current() <= selected.view.highest_modseq {
        return false;
    }
    matches!(session.ctx.store.status(selected.id).await, Err(StoreError::MailboxGone(_)))
}

/// Ends the session after its selected mailbox was deleted. IMAP has no
/// response that takes a client out of the selected state, and the
/// client's sequence numbers refer to messages that no longer exist, so
/// the session sends BYE and closes, as Dovecot 2.3 does. The client logs
/// in again and lists the mailboxes as they are now.
fn selected_mailbox_deleted() -> Outcome {
    let reply = Reply { status: Status::No, code: Some("NONEXISTENT".to_owned()), text: "Selected mailbox was deleted".to_owned() };
    Outcome::Disconnect(reply, SELECTED_MAILBOX_DELETED)
}

/// Returns whether `body` reads or changes the selected mailbox, so that
/// it must not run on a mailbox that was deleted. SELECT, EXAMINE,
/// UNSELECT, CLOSE and LOGOUT leave the mailbox and still run.
fn uses_selected_mailbox(body: &CommandBody<'_>) -> bool {
    use CommandBody::*;
    matches!(
        body,
        Noop | Check | Expunge | ExpungeUid { .. } | Search { .. } | Fetch { .. } | Store { .. } | Copy { .. } | Move { .. } | Idle
    )
}

/// Calls the handler of `command`; the state was already checked.
pub async fn run(
    session: &mut Session,
    command: ClientCommand,
    out: &mut Output,
    stream: &mut Transport,
) -> std::io::Result<Outcome> {
    use CommandBody::*;
    if uses_selected_mailbox(&command.body) && selected_mailbox_gone(session).await {
        return Ok(selected_mailbox_deleted());
    }
    let outcome = match command.body {
        Capability => misc::capability(session, out),
        Noop | Check => ok(format!("{} completed", command.body.name())),
        Logout => misc::logout(out),
        Id { parameters } => misc::id(session, parameters, out),
        Enable { capabilities } => misc::enable(session, capabilities, out),
        Namespace => misc::namespace(out),
        StartTLS if session.security.tls => bad("TLS is already active"),
        StartTLS => Outcome::StartTls,
        Login { username, password } => auth::login(session, username, password).await,
        Authenticate { mechanism, initial_response } => {
            auth::authenticate(session, command.tag, mechanism, initial_response, out).await
        }
        Select { mailbox, .. } => select::select(session, &mailbox, false, out).await,
        Examine { mailbox, .. } => select::select(session, &mailbox, true, out).await,
        Unselect => select::unselect(session),
        Close => select::close(session).await,
        Create { mailbox } => mailbox::create(session, &mailbox, &[], out).await,
        Delete { mailbox } => mailbox::delete(session, &mailbox, out).await,
        Rename { from, to } => mailbox::rename(session, &from, &to, out).await,
        Subscribe { mailbox } => mailbox::subscribe(session, &mailbox, true).await,
        Unsubscribe { mailbox } => mailbox::subscribe(session, &mailbox, false).await,
        List { reference, mailbox_wildcard } => list::list(session, &reference, &mailbox_wildcard, false, out).await,
        Lsub { reference, mailbox_wildcard } => list::list(session, &reference, &mailbox_wildcard, true, out).await,
        Status { mailbox, item_names } => mailbox::status(session, &mailbox, &item_names, out).await,
        Append { mailbox, flags, date, message } => append::append(session, &mailbox, &flags, date, message).await,
        Expunge => messages::expunge(session, None, out).await,
        ExpungeUid { sequence_set } => messages::expunge(session, Some(&sequence_set), out).await,
        Search { charset, criteria, uid } => search::search(session, &command.tag, charset, criteria, uid, out).await,
        Fetch { sequence_set, macro_or_item_names, uid, .. } => {
            return fetch::fetch(session, &sequence_set, macro_or_item_names, uid, out, stream).await;
        }
        Store { sequence_set, kind, response, flags, uid, .. } => {
            messages::store(session, &sequence_set, kind, response, &flags, uid, out).await
        }
        Copy { sequence_set, mailbox, uid } => messages::copy(session, &sequence_set, &mailbox, uid, false, out).await,
        Move { sequence_set, mailbox, uid } => messages::copy(session, &sequence_set, &mailbox, uid, true, out).await,
        Idle => misc::idle(session, command.tag, out).await,
        _ => bad(format!("{} is not supported", command.body.name())),
    };
    Ok(outcome)
}

/// Calls the handler of a command parsed by Roost's extended grammar (the
/// IMAP4rev2 forms imap-codec lacks); the state was already checked.
pub async fn run_extended(
    session: &mut Session,
    tag: &str,
    command: ExtendedCommand,
    out: &mut Output,
    stream: &mut Transport,
) -> std::io::Result<Outcome> {
    // The reader checked the tag, so this conversion does not fail.
    let Ok(tag) = Tag::try_from(tag.to_owned()) else { return Ok(bad("Invalid tag")) };
    let uses_selected = matches!(command, ExtendedCommand::Search(_) | ExtendedCommand::SavedResult(_));
    if uses_selected && selected_mailbox_gone(session).await {
        return Ok(selected_mailbox_deleted());
    }
    let outcome = match command {
        ExtendedCommand::Search(search) => search::search_extended(session, &tag, search, out).await,
        ExtendedCommand::List(list) => list::list_extended(session, list, out).await,
        ExtendedCommand::Create(create) => mailbox::create_special_use(session, create, out).await,
        ExtendedCommand::Status(status) => mailbox::status_extended(session, status, out).await,
        ExtendedCommand::SavedResult(saved) => return run_saved_result(session, tag, saved, out, stream).await,
    };
    Ok(outcome)
}

/// Runs a command whose sequence set is `$` with the saved search result
/// in its place (RFC 5182 section 2.2). With no saved result, or none of
/// its messages left, the command applies to no message and succeeds.
async fn run_saved_result(
    session: &mut Session,
    tag: Tag<'static>,
    saved: SavedResultCommand,
    out: &mut Output,
    stream: &mut Transport,
) -> std::io::Result<Outcome> {
    let name = saved.body().name();
    let Some(selected) = session.selected() else { return Ok(bad("No mailbox selected")) };
    let Some(uids) = selected.saved_search.as_deref() else { return Ok(ok(format!("{name} completed"))) };
    let set = match saved.uses_uids() {
        true => Some(uids.clone()),
        false => {
            let indexes = resolve_clamped(&selected.view, uids, true);
            let numbers: Vec<u32> = indexes.iter().map(|&index| index as u32 + 1).collect();
            search::uid_set(&numbers)
        }
    };
    let Some(set) = set else { return Ok(ok(format!("{name} completed"))) };
    let mut command = saved.into_command(set);
    command.tag = tag;
    Box::pin(run(session, command, out, stream)).await
}
