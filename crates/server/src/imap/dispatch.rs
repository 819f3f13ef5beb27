//! Routes each command to its handler after checking the session state
//! allows it.

use roost_proto::extended::ExtendedCommand;
use roost_proto::state::{SessionState, check_allowed};
use roost_proto::types::core::Tag;
use roost_proto::types::command::CommandBody;
use crate::transport::Transport;
use tracing::debug;

use super::cmd::{self, Outcome};
use super::output::{Output, Status};
use super::session::{ClientCommand, Flow, Session, State};
use super::sync::sync;

/// Runs one command and leaves its responses in `out`. Handlers that
/// stream large output write part of it to `stream` themselves.
pub async fn dispatch(
    session: &mut Session,
    command: ClientCommand,
    out: &mut Output,
    stream: &mut Transport,
) -> std::io::Result<Flow> {
    let tag = command.tag.inner().to_owned();
    let name = command.body.name();
    debug!(session = session.id, command = name, "command");

    if let Err(rejection) = check_allowed(protocol_state(&session.state), &command.body) {
        out.status(Some(&tag), Status::Bad, None, rejection.text);
        return Ok(Flow::Continue);
    }

    // EXPUNGE responses may not be sent during FETCH, STORE and SEARCH
    // (RFC 3501 section 7.4.1); UID FETCH, UID STORE and UID SEARCH may.
    let allow_expunge = !matches!(
        command.body,
        CommandBody::Fetch { uid: false, .. } | CommandBody::Store { uid: false, .. } | CommandBody::Search { uid: false, .. }
    );

    let outcome = cmd::run(session, command, out, stream).await?;
    Ok(finish(session, &tag, outcome, allow_expunge, out).await)
}

/// Runs a command that only Roost's extended grammar parses (the IMAP4rev2
/// forms imap-codec lacks), after the same state check.
pub async fn dispatch_extended(
    session: &mut Session,
    tag: Tag<'static>,
    command: ExtendedCommand,
    out: &mut Output,
    stream: &mut Transport,
) -> std::io::Result<Flow> {
    let tag = tag.inner().to_owned();
    let (required, allow_expunge) = match &command {
        ExtendedCommand::List(_) | ExtendedCommand::Create(_) | ExtendedCommand::Status(_) => {
            (Required::Authenticated, true)
        }
        ExtendedCommand::Search(search) => (Required::Selected, search.uid),
        ExtendedCommand::SavedResult(saved) => {
            if let Err(rejection) = check_allowed(protocol_state(&session.state), saved.body()) {
                out.status(Some(&tag), Status::Bad, None, rejection.text);
                return Ok(Flow::Continue);
            }
            (Required::Selected, saved.uses_uids())
        }
    };
    let allowed = match (&session.state, required) {
        (State::Selected(..), _) => true,
        (State::Authenticated(_), Required::Authenticated) => true,
        _ => false,
    };
    if !allowed {
        let text = match required {
            Required::Authenticated => "Command is not valid before authentication: log in first",
            Required::Selected => "Command requires a selected mailbox: use SELECT or EXAMINE first",
        };
        out.status(Some(&tag), Status::Bad, None, text);
        return Ok(Flow::Continue);
    }
    let outcome = cmd::run_extended(session, &tag, command, out, stream).await?;
    Ok(finish(session, &tag, outcome, allow_expunge, out).await)
}

/// The state an extended command needs.
#[derive(Clone, Copy)]
enum Required {
    Authenticated,
    Selected,
}

/// Sends pending updates and the tagged response of a finished command.
async fn finish(session: &mut Session, tag: &str, outcome: Outcome, allow_expunge: bool, out: &mut Output) -> Flow {
    let tag = Some(tag);
    match outcome {
        Outcome::Done(reply) => {
            sync(session, out, allow_expunge).await;
            out.status(tag, reply.status, reply.code.as_deref(), &reply.text);
            Flow::Continue
        }
        Outcome::Continued => Flow::Continue,
        Outcome::Close(reply) => {
            out.status(tag, reply.status, reply.code.as_deref(), &reply.text);
            Flow::Close
        }
        Outcome::Disconnect(reply, bye) => {
            out.status(tag, reply.status, reply.code.as_deref(), &reply.text);
            out.untagged(&format!("BYE {bye}"));
            Flow::Close
        }
        Outcome::StartTls => {
            out.status(tag, Status::Ok, None, "Begin TLS negotiation now");
            Flow::StartTls
        }
    }
}

pub fn protocol_state(state: &State) -> SessionState {
    match state {
        State::NotAuthenticated { .. } => SessionState::NotAuthenticated,
        State::Authenticated(_) => SessionState::Authenticated,
        State::Selected(_, selected) => SessionState::Selected { read_only: selected.read_only },
        State::Logout => SessionState::Logout,
    }
}
