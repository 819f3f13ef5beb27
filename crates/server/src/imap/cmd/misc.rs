//! CAPABILITY, LOGOUT, ID, ENABLE, NAMESPACE and IDLE.

use roost_proto::enable::{EnableTarget, classify_enable};
use roost_proto::types::core::{IString, NString, Tag, Vec1};
use roost_proto::types::extensions::enable::CapabilityEnable;
use tracing::info;

use super::{Outcome, Reply, ok};
use crate::imap::output::{Output, Status};
use roost_proto::response::write_string;
use crate::imap::session::{Pending, Session};

/// Most ID parameters logged from one client; the rest are ignored.
const ID_PARAMETERS_LOGGED_MAX: usize = 30;

pub fn capability(session: &Session, out: &mut Output) -> Outcome {
    out.untagged(&format!("CAPABILITY {}", crate::imap::capabilities(session)));
    ok("CAPABILITY completed")
}

pub fn logout(out: &mut Output) -> Outcome {
    out.untagged("BYE Logging out");
    Outcome::Close(Reply { status: Status::Ok, code: None, text: "LOGOUT completed".to_owned() })
}

/// Answers RFC 2971 ID with the server's name and version, and logs what
/// the client says about itself.
pub fn id(session: &Session, parameters: Option<Vec<(IString<'static>, NString<'static>)>>, out: &mut Output) -> Outcome {
    if let Some(parameters) = parameters {
        let described: Vec<String> = parameters
            .iter()
            .take(ID_PARAMETERS_LOGGED_MAX)
            .map(|(key, value)| {
                let key = String::from_utf8_lossy(key.as_ref());
                let value = value.0.as_ref().map(|v| String::from_utf8_lossy(v.as_ref()).into_owned());
                format!("{key}={}", value.as_deref().unwrap_or("NIL"))
            })
            .collect();
        info!(session = session.id, client = %described.join(", "), "client ID");
        // The client's name can place the connection in a class that
        // matches on client IDs.
        let name = parameters.iter().find(|(key, _)| key.as_ref().eq_ignore_ascii_case(b"name"));
        if let Some((_, value)) = name
            && let Some(value) = value.0.as_ref()
        {
            session.ctx.sessions.identify(session.ticket(), &String::from_utf8_lossy(value.as_ref()));
        }
    }
    let mut line = b"* ID (".to_vec();
    write_string(&mut line, b"name");
    line.push(b' ');
    write_string(&mut line, b"Roost");
    line.push(b' ');
    write_string(&mut line, b"version");
    line.push(b' ');
    write_string(&mut line, env!("CARGO_PKG_VERSION").as_bytes());
    line.extend_from_slice(b")\r\n");
    out.raw(&line);
    ok("ID completed")
}

/// RFC 5161 ENABLE of IMAP4rev2 (RFC 9051) and UTF8=ACCEPT (RFC 6855).
/// Both let the client send UTF-8 strings and switch mailbox names to
/// UTF-8; IMAP4rev2 also switches responses to rev2 forms. The ENABLED
/// response lists only what this command turned on, so enabling twice
/// lists nothing the second time; other names are ignored, as RFC 5161
/// requires.
pub fn enable(session: &mut Session, capabilities: Vec1<CapabilityEnable<'static>>, out: &mut Output) -> Outcome {
    let mut enabled_now: Vec<&str> = Vec::new();
    for capability in capabilities.as_ref() {
        match classify_enable(capability) {
            EnableTarget::Imap4Rev2 if !session.enabled.imap4rev2 => {
                session.enabled.imap4rev2 = true;
                enabled_now.push("IMAP4rev2");
            }
            EnableTarget::Utf8Accept if !session.enabled.utf8_accept => {
                session.enabled.utf8_accept = true;
                enabled_now.push("UTF8=ACCEPT");
            }
            _ => {}
        }
    }
    if !enabled_now.is_empty() {
        session.accept_utf8();
    }
    let mut line = String::from("ENABLED");
    for name in enabled_now {
        line.push(' ');
        line.push_str(name);
    }
    out.untagged(&line);
    ok("ENABLE completed")
}

/// RFC 2342 NAMESPACE: one personal namespace with `/` as separator.
pub fn namespace(out: &mut Output) -> Outcome {
    out.untagged("NAMESPACE ((\"\" \"/\")) NIL NIL");
    ok("NAMESPACE completed")
}

/// Starts RFC 2177 IDLE. The session announces mailbox changes as they
/// happen until the client sends DONE.
pub async fn idle(session: &mut Session, tag: Tag<'static>, out: &mut Output) -> Outcome {
    out.line("+ idling");
    // Changes that arrived before IDLE are announced at once; later ones
    // wake the session through the mailbox's change counter.
    crate::imap::sync::sync(session, out, true).await;
    session.pending = Pending::Idle(tag);
    Outcome::Continued
}
