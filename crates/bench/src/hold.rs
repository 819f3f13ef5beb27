//! The idle sessions of a worker, watched by one epoll instance.
//!
//! Once a session's IDLE begins, its task ends and its socket moves here,
//! into a slot of a few words in a vector plus an epoll registration. An
//! idle plaintext session then costs the worker a 56-byte slot instead of
//! a task, a future and tokio's per-socket state. One task waits on the
//! epoll descriptor (through tokio's `AsyncFd`) and reads whichever
//! sockets are ready into the per-thread scratch buffer.

use std::cell::RefCell;
use std::io::{self, Read as _, Write as _};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use rustls::ClientConnection;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::connection::{LINE_BYTES_MAX, drain_plaintext, feed_tls, take_line, with_scratch};
use crate::outcome::Cause;
use crate::session::parse_exists;
use crate::system::monotonic_ns;
use crate::worker::WorkerState;

/// Ready sockets taken from epoll per call.
const EVENTS_PER_WAIT: usize = 1024;

/// One idle session.
#[derive(Default)]
struct Slot {
    /// `None` before IDLE began and after the connection closed.
    stream: Option<TcpStream>,
    tls: Option<Box<ClientConnection>>,
    /// Bytes of a line whose end has not arrived yet; empty and
    /// unallocated almost always.
    pending: Vec<u8>,
    exists_at_select: u64,
    exists_reported: u64,
}

/// The effect of a line received during IDLE on its session.
enum LineOutcome {
    Continue,
    Close(Cause, String),
}

pub struct HoldSet {
    epoll: AsyncFd<OwnedFd>,
    /// Indexed by the session's position in the worker's slice.
    slots: RefCell<Vec<Slot>>,
}

impl HoldSet {
    pub fn new(sessions: u64) -> io::Result<HoldSet> {
        // SAFETY: epoll_create1 has no pointer arguments; the returned
        // descriptor is checked and then owned by the OwnedFd.
        let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut slots = Vec::new();
        slots.resize_with(sessions as usize, Slot::default);
        // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays
        // open and the same for the AsyncFd's whole life.
        let epoll = unsafe { AsyncFd::register_with_interest(epoll, Interest::READABLE) }
            .map_err(|err| err.into_parts().1)?;
        Ok(HoldSet {
            epoll,
            slots: RefCell::new(slots),
        })
    }

    /// Takes over the socket of session `slot`, which has just received
    /// the IDLE continuation.
    pub fn adopt(
        &self,
        slot: usize,
        stream: TcpStream,
        tls: Option<Box<ClientConnection>>,
        pending: Vec<u8>,
        exists_at_select: u64,
    ) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
            u64: slot as u64,
        };
        // SAFETY: both descriptors are open; epoll_ctl copies the event.
        let result = unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                stream.as_raw_fd(),
                &mut event,
            )
        };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut slots = self.slots.borrow_mut();
        slots[slot] = Slot {
            stream: Some(stream),
            tls,
            pending,
            exists_at_select,
            exists_reported: exists_at_select,
        };
        Ok(())
    }

    /// Serves the idle sockets until the worker exits.
    pub async fn run(&self, state: &WorkerState) -> io::Result<()> {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_WAIT];
        loop {
            let mut guard = self.epoll.readable().await?;
            let ready = guard.try_io(|epoll| {
                // SAFETY: `events` has room for EVENTS_PER_WAIT entries and
                // outlives the call. The timeout of 0 makes the call return
                // at once.
                let count = unsafe {
                    libc::epoll_wait(
                        epoll.as_raw_fd(),
                        events.as_mut_ptr(),
                        EVENTS_PER_WAIT as i32,
                        0,
                    )
                };
                match count {
                    ..0 => Err(io::Error::last_os_error()),
                    0 => Err(io::ErrorKind::WouldBlock.into()),
                    count => Ok(count as usize),
                }
            });
            let count = match ready {
                Ok(Ok(count)) => count,
                Ok(Err(err)) if err.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(err)) => return Err(err),
                Err(_would_block) => continue,
            };
            for event in &events[..count] {
                let slot = event.u64 as usize;
                self.serve(state, slot);
            }
        }
    }

    /// Reads everything session `slot` has received and acts on each
    /// complete line.
    fn serve(&self, state: &WorkerState, slot_index: usize) {
        let mut slots = self.slots.borrow_mut();
        let slot = &mut slots[slot_index];
        let outcome = match with_scratch(|scratch| read_available(slot, scratch)) {
            // Lines that arrived with the close, such as a BYE, come first.
            Ok(closed) => match self.take_lines(state, slot_index, slot) {
                LineOutcome::Continue if closed => LineOutcome::Close(
                    Cause::ClosedDuringHold,
                    "connection closed by the server".to_owned(),
                ),
                outcome => outcome,
            },
            Err(outcome) => outcome,
        };
        if let LineOutcome::Close(cause, message) = outcome {
            // Closing the socket also takes it out of the epoll set.
            *slot = Slot::default();
            drop(slots);
            state.hold_failed(cause, || message);
        }
    }

    fn take_lines(&self, state: &WorkerState, slot_index: usize, slot: &mut Slot) -> LineOutcome {
        while let Some(line) = take_line(&mut slot.pending) {
            if let LineOutcome::Close(cause, message) = handle_line(state, slot_index, slot, &line)
            {
                return LineOutcome::Close(cause, message);
            }
        }
        if slot.pending.len() > LINE_BYTES_MAX {
            return LineOutcome::Close(
                Cause::ClosedDuringHold,
                format!("response line longer than {LINE_BYTES_MAX} bytes"),
            );
        }
        LineOutcome::Continue
    }
}

/// Reads until the socket would block, appending plaintext to `pending`.
/// Returns whether the server closed the connection, or the outcome that
/// closes the session when reading failed.
fn read_available(slot: &mut Slot, scratch: &mut [u8]) -> Result<bool, LineOutcome> {
    let Slot {
        stream,
        tls,
        pending,
        ..
    } = slot;
    let Some(stream) = stream.as_mut() else {
        return Ok(false);
    };
    let failed = |err: io::Error| {
        LineOutcome::Close(Cause::ClosedDuringHold, format!("reading failed: {err}"))
    };
    loop {
        match stream.read(scratch) {
            Ok(0) => return Ok(true),
            Ok(count) => match tls.as_deref_mut() {
                None => pending.extend_from_slice(&scratch[..count]),
                Some(tls) => {
                    feed_tls(tls, &scratch[..count]).map_err(failed)?;
                    if drain_plaintext(tls, scratch, pending).map_err(failed)? {
                        return Ok(true);
                    }
                    // A key update or alert may need a reply. If the socket
                    // buffer is full, the reply waits for the next read.
                    while tls.wants_write() {
                        match tls.write_tls(stream) {
                            Ok(_) => {}
                            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                            Err(err) => return Err(failed(err)),
                        }
                    }
                    let _ = stream.flush();
                }
            },
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(failed(err)),
        }
        // The rest stays in the socket until these lines are taken.
        if pending.len() > LINE_BYTES_MAX {
            return Ok(false);
        }
    }
}

/// Acts on one line received during IDLE: BYE or a tagged reply ends the
/// session, `* N EXISTS` is reported, `* OK` counts as a keepalive.
fn handle_line(
    state: &WorkerState,
    slot_index: usize,
    slot: &mut Slot,
    line: &[u8],
) -> LineOutcome {
    if line.starts_with(b"* BYE") {
        return LineOutcome::Close(
            Cause::ClosedDuringHold,
            String::from_utf8_lossy(line).into_owned(),
        );
    }
    if line.starts_with(b"c ") {
        return LineOutcome::Close(Cause::IdleEnded, String::from_utf8_lossy(line).into_owned());
    }
    if let Some(count) = parse_exists(line) {
        if count > slot.exists_reported {
            slot.exists_reported = count;
            let index = state.job.first_session + slot_index as u64;
            state.exists_seen(index, count - slot.exists_at_select, monotonic_ns());
        }
    } else if line.starts_with(b"* OK") {
        state.keepalive();
    }
    LineOutcome::Continue
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_slot_stays_small() {
        // The per-session cost the module documentation states.
        assert!(
            std::mem::size_of::<Slot>() <= 56,
            "{} bytes",
            std::mem::size_of::<Slot>()
        );
    }
}
