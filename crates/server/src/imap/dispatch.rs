//! Routes each command to its handler after checking the session state
//! allows it.

use roost_proto::state::{SessionState, check_allowed};
use roost_proto::types::command::CommandBody;
use tokio::net::TcpStream;
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
    stream: &mut TcpStream,
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
    match outcome {
        Outcome::Done(reply) => {
            sync(session, out, allow_expunge).await;
            out.status(Some(&tag), reply.status, reply.code.as_deref(), &reply.text);
            Ok(Flow::Continue)
        }
        Outcome::Continued => Ok(Flow::Continue),
        Outcome::Close(reply) => {
            out.status(Some(&tag), reply.status, reply.code.as_deref(), &reply.text);
            Ok(Flow::Close)
        }
        Outcome::Disconnect(reply, bye) => {
            out.status(Some(&tag), reply.status, reply.code.as_deref(), &reply.text);
            out.untagged(&format!("BYE {bye}"));
            Ok(Flow::Close)
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
