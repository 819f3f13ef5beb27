//! The byte stream an IMAP session talks over: a plaintext TCP socket or a
//! TLS session on one, behind one small enum so the session's future needs
//! no boxing and a plaintext session pays nothing for TLS.
//!
//! A [`Transport`] offers the calls the session driver makes on a socket
//! (`poll_read_ready`, `try_read`, `write_all`, `shutdown`) plus
//! [`Transport::release_buffers`], which frees TLS buffers while the session
//! waits, and [`Transport::start_tls`] for STARTTLS.
//!
//! This module handles sockets and TLS records. It must not know IMAP
//! commands or responses, and it never reads certificate files (that is
//! [`crate::tls`]).

mod tls_session;

use std::io;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::warn;

pub use tls_session::{RECORD_BYTES_MAX, TlsLimits, TlsSession};

use crate::tls::TlsAcceptor;

/// A client connection, plaintext or TLS.
pub enum Transport {
    Plain(TcpStream),
    Tls(TlsSession),
}

impl Transport {
    /// Accepts an implicit-TLS connection (the port 993 role): the
    /// handshake starts as soon as the TCP connection is open.
    pub async fn accept_tls(
        socket: TcpStream,
        acceptor: &TlsAcceptor,
        limits: &TlsLimits,
    ) -> io::Result<Transport> {
        let session = TlsSession::accept(socket, acceptor.server_config(), limits).await?;
        Ok(Transport::Tls(session))
    }

    /// Upgrades a plaintext connection to TLS after the server has sent its
    /// reply to STARTTLS.
    ///
    /// `buffered_plaintext` must be every byte the caller had read from the
    /// socket after the STARTTLS command line and not yet handled. They are
    /// discarded unread: bytes sent before the handshake are not protected
    /// by it, and treating them as commands of the TLS session would let a
    /// man in the middle inject commands (CVE-2011-0411). Bytes still in
    /// the socket are fed to the handshake, which fails on them.
    ///
    /// Fails with `InvalidInput` when the connection is already TLS.
    pub async fn start_tls(
        self,
        acceptor: &TlsAcceptor,
        limits: &TlsLimits,
        buffered_plaintext: Vec<u8>,
    ) -> io::Result<Transport> {
        let socket = match self {
            Transport::Plain(socket) => socket,
            Transport::Tls(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "STARTTLS on a connection that already uses TLS",
                ));
            }
        };
        if !buffered_plaintext.is_empty() {
            let peer = socket.peer_addr().ok();
            warn!(
                ?peer,
                bytes = buffered_plaintext.len(),
                "discarded plaintext sent after STARTTLS"
            );
        }
        drop(buffered_plaintext);
        Transport::accept_tls(socket, acceptor, limits).await
    }

    /// Polls until [`Transport::try_read`] may return data or the end of
    /// the stream. Wake-ups can be spurious. A poll rather than a future,
    /// so the waiting session keeps no state for it.
    pub fn poll_read_ready(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        match self {
            Transport::Plain(socket) => socket.poll_read_ready(cx),
            Transport::Tls(session) => session.poll_read_ready(cx),
        }
    }

    /// Reads received plaintext without waiting: returns 0 at the end of
    /// the stream and `WouldBlock` when nothing is available.
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(socket) => socket.try_read(buf),
            Transport::Tls(session) => session.try_read(buf),
        }
    }

    /// Writes all of `bytes`, encrypted when the connection uses TLS.
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Transport::Plain(socket) => socket.write_all(bytes).await,
            Transport::Tls(session) => session.write_all(bytes).await,
        }
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(socket) => socket.flush().await,
            Transport::Tls(session) => session.flush().await,
        }
    }

    /// Closes the sending side, after a TLS close_notify when the
    /// connection uses TLS.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(socket) => socket.shutdown().await,
            Transport::Tls(session) => session.shutdown().await,
        }
    }

    /// Frees every empty TLS buffer. Call it before each wait; a plaintext
    /// connection owns no buffers.
    pub fn release_buffers(&mut self) {
        if let Transport::Tls(session) = self {
            session.release_buffers();
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    /// Returns the underlying socket, for addresses and socket options.
    pub fn socket(&self) -> &TcpStream {
        match self {
            Transport::Plain(socket) => socket,
            Transport::Tls(session) => session.socket(),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Pins the inline size of a transport, which every waiting session's
    //! future contains. The heap an idle TLS session owns is measured with
    //! a counting allocator in `tests/tls_memory.rs`.

    use std::mem::size_of;

    use super::*;

    /// Bytes of a transport inline: a tokio socket, the TLS state's box
    /// pointer and the enum's tag.
    const TRANSPORT_BYTES_MAX: usize = 48;
    /// Bytes of the boxed TLS state, rustls' connection struct included
    /// but not the heap it points to.
    const TLS_STATE_BYTES_MAX: usize = 1280;

    #[test]
    fn transport_stays_small() {
        let transport = size_of::<Transport>();
        let socket = size_of::<TcpStream>();
        assert!(
            transport <= TRANSPORT_BYTES_MAX,
            "Transport is {transport} bytes"
        );
        assert!(
            transport <= socket + 16,
            "Transport is {transport} bytes, TcpStream {socket}"
        );
    }

    #[test]
    fn boxed_tls_state_stays_small() {
        let state = tls_session::tls_state_size();
        eprintln!("boxed TLS state: {state} bytes");
        assert!(state <= TLS_STATE_BYTES_MAX, "TLS state is {state} bytes");
    }
}
