//! The phase board: one byte per governor ticket saying whether the
//! session waits in IDLE, between commands, or is busy.
//!
//! Worker processes write it as their sessions change phase, and the
//! supervisor's governor reads it to tell which sessions it may preempt
//! or rotate, without a message per command. Across processes the board
//! is a shared memory file (memfd) mapped by each; in a single-process
//! server it is the same kind of mapping, unshared.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU8, Ordering};

use roost_governor::Ticket;

/// A shared array of phase bytes indexed by ticket.
pub struct PhaseBoard {
    base: *const AtomicU8,
    len: usize,
    /// Keeps the shared memory file open while mapped; `None` when the
    /// mapping is private.
    file: Option<File>,
}

// SAFETY: the mapping is only accessed through atomic bytes, and it lives
// until the board is dropped.
unsafe impl Send for PhaseBoard {}
// SAFETY: as above; every access is an atomic load or store.
unsafe impl Sync for PhaseBoard {}

impl PhaseBoard {
    /// Creates a board for `len` tickets in a new shared memory file.
    pub fn create(len: usize) -> std::io::Result<PhaseBoard> {
        let len = len.max(1);
        // SAFETY: the name is a valid C string; the result is checked.
        let fd = unsafe { libc::memfd_create(c"roost-phases".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nothing else.
        let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        file.set_len(len as u64)?;
        Self::map(file, len)
    }

    /// Maps the board another process created, from its shared memory file.
    pub fn open(file: File) -> std::io::Result<PhaseBoard> {
        let len = usize::try_from(file.metadata()?.len()).unwrap_or(0);
        if len == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "the phase board file is empty"));
        }
        Self::map(file, len)
    }

    fn map(file: File, len: usize) -> std::io::Result<PhaseBoard> {
        // SAFETY: a fresh shared mapping of `len` bytes of an open file,
        // checked for failure below; it is unmapped in Drop.
        let base = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, file.as_raw_fd(), 0)
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(PhaseBoard { base: base.cast(), len, file: Some(file) })
    }

    /// Returns the shared memory file, to hand to a worker process.
    pub fn file(&self) -> Option<&File> {
        self.file.as_ref()
    }

    fn slot(&self, ticket: Ticket) -> Option<&AtomicU8> {
        let index = ticket.0 as usize;
        // SAFETY: `index` is inside the mapping, which lives as long as self.
        (index < self.len).then(|| unsafe { &*self.base.add(index) })
    }

    /// Records a session's phase. A ticket beyond the board is not
    /// recorded, and its session then counts as busy.
    pub fn set(&self, ticket: Ticket, phase: u8) {
        if let Some(slot) = self.slot(ticket) {
            slot.store(phase, Ordering::Relaxed);
        }
    }

    /// Returns a session's last recorded phase, `None` beyond the board.
    pub fn get(&self, ticket: Ticket) -> Option<u8> {
        self.slot(ticket).map(|slot| slot.load(Ordering::Relaxed))
    }
}

impl Drop for PhaseBoard {
    fn drop(&mut self) {
        // SAFETY: base and len come from the successful mmap in `map`.
        unsafe {
            libc::munmap(self.base as *mut libc::c_void, self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_seen_through_a_second_mapping() {
        let board = PhaseBoard::create(16).unwrap();
        let copy = PhaseBoard::open(board.file().unwrap().try_clone().unwrap()).unwrap();
        board.set(Ticket(3), 2);
        assert_eq!(copy.get(Ticket(3)), Some(2));
        copy.set(Ticket(15), 1);
        assert_eq!(board.get(Ticket(15)), Some(1));
    }

    #[test]
    fn tickets_past_the_end_are_ignored() {
        let board = PhaseBoard::create(4).unwrap();
        board.set(Ticket(4), 2);
        assert_eq!(board.get(Ticket(4)), None);
        assert_eq!(board.get(Ticket(3)), Some(0));
    }
}
