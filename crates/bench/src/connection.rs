//! One client connection during its setup, plain or implicit TLS, read
//! line by line.
//!
//! Bytes are read into a per-thread scratch buffer. Only the part of a line
//! that has not ended yet is copied into the connection, and that copy is
//! freed once every complete line has been taken. The hold set reads idle
//! sockets with the same buffer and helpers.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::ClientConnection;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

/// Maximum length of a response line, in bytes. A longer line fails the
/// session.
pub const LINE_BYTES_MAX: usize = 64 * 1024;

/// Maximum length of a literal read with `read_bytes`, in bytes.
pub const LITERAL_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Size of the per-thread scratch buffer, enough for a full TLS record.
const SCRATCH_BYTES: usize = 64 * 1024;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH_BYTES]);
}

pub struct Connection {
    stream: TcpStream,
    // Boxed so that a plaintext connection pays one pointer for it.
    tls: Option<Box<ClientConnection>>,
    /// Bytes of a line whose end has not arrived yet.
    pending: Vec<u8>,
    /// The TLS peer sent close_notify.
    closed: bool,
}

impl Connection {
    pub fn plain(stream: TcpStream) -> Connection {
        Connection {
            stream,
            tls: None,
            pending: Vec::new(),
            closed: false,
        }
    }

    /// Runs a TLS handshake over `stream`.
    pub async fn tls(
        stream: TcpStream,
        config: Arc<rustls::ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<Connection> {
        let client = ClientConnection::new(config, name).map_err(io::Error::other)?;
        let mut connection = Connection {
            stream,
            tls: Some(Box::new(client)),
            pending: Vec::new(),
            closed: false,
        };
        connection.handshake().await?;
        Ok(connection)
    }

    async fn handshake(&mut self) -> io::Result<()> {
        loop {
            self.flush_tls().await?;
            let Some(tls) = self.tls.as_deref_mut() else {
                return Ok(());
            };
            if !tls.is_handshaking() {
                return Ok(());
            }
            self.stream.readable().await?;
            let Connection { stream, tls, .. } = self;
            let tls = tls.as_deref_mut().expect("TLS connection");
            let received = SCRATCH.with_borrow_mut(|scratch| -> io::Result<usize> {
                let count = stream.try_read(scratch)?;
                feed_tls(tls, &scratch[..count])?;
                Ok(count)
            });
            match received {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed during the TLS handshake",
                    ));
                }
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err),
            }
        }
    }

    /// Writes all of `bytes`.
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.writer().write_all(bytes)?;
            return self.flush_tls().await;
        }
        let mut written = 0;
        while written < bytes.len() {
            self.stream.writable().await?;
            match self.stream.try_write(&bytes[written..]) {
                Ok(count) => written += count,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Sends the TLS records rustls has queued.
    async fn flush_tls(&mut self) -> io::Result<()> {
        let Connection { stream, tls, .. } = self;
        let Some(tls) = tls.as_deref_mut() else {
            return Ok(());
        };
        while tls.wants_write() {
            stream.writable().await?;
            match tls.write_tls(&mut SocketWriter(stream)) {
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Returns the next line without its CRLF, or `None` once the server
    /// has closed the connection.
    pub async fn read_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(line) = self.take_line() {
                return Ok(Some(line));
            }
            if self.pending.len() > LINE_BYTES_MAX {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("response line longer than {LINE_BYTES_MAX} bytes"),
                ));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// Returns the next `count` bytes as they are, such as the literal a
    /// line announced with `{count}`, or `None` once the server has closed
    /// the connection first.
    pub async fn read_bytes(&mut self, count: usize) -> io::Result<Option<Vec<u8>>> {
        if count > LITERAL_BYTES_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("literal of {count} bytes, above the maximum of {LITERAL_BYTES_MAX}"),
            ));
        }
        while self.pending.len() < count {
            if !self.fill().await? {
                return Ok(None);
            }
        }
        let bytes: Vec<u8> = self.pending.drain(..count).collect();
        if self.pending.is_empty() {
            self.pending = Vec::new();
        }
        Ok(Some(bytes))
    }

    /// Waits for more plaintext and appends it to `pending`. Returns false
    /// once the server has closed the connection.
    async fn fill(&mut self) -> io::Result<bool> {
        loop {
            if self.closed {
                return Ok(false);
            }
            let Connection {
                stream,
                tls,
                pending,
                closed,
            } = self;
            // Records processed with the end of the handshake, or with an
            // earlier line, may already hold decrypted bytes.
            if let Some(tls) = tls.as_deref_mut() {
                let before = pending.len();
                *closed =
                    SCRATCH.with_borrow_mut(|scratch| drain_plaintext(tls, scratch, pending))?;
                if pending.len() > before {
                    return Ok(true);
                }
                if *closed {
                    continue;
                }
            }
            stream.readable().await?;
            let received = SCRATCH.with_borrow_mut(|scratch| -> io::Result<usize> {
                let count = stream.try_read(scratch)?;
                if count == 0 {
                    return Ok(0);
                }
                match tls.as_deref_mut() {
                    None => pending.extend_from_slice(&scratch[..count]),
                    Some(tls) => feed_tls(tls, &scratch[..count])?,
                }
                Ok(count)
            });
            match received {
                Ok(0) => return Ok(false),
                Ok(_) => {
                    // rustls may queue an alert or a key update to send back.
                    self.flush_tls().await?;
                    // Plaintext went to `pending` directly; TLS records are
                    // decrypted at the top of the loop.
                    if self.tls.is_none() {
                        return Ok(true);
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err),
            }
        }
    }

    fn take_line(&mut self) -> Option<Vec<u8>> {
        take_line(&mut self.pending)
    }

    /// Returns the socket, now out of tokio's reactor, the TLS state and
    /// any bytes of an unfinished line, for the worker's hold set.
    pub fn into_parts(
        self,
    ) -> io::Result<(std::net::TcpStream, Option<Box<ClientConnection>>, Vec<u8>)> {
        Ok((self.stream.into_std()?, self.tls, self.pending))
    }
}

/// Runs `work` with this thread's scratch buffer.
pub fn with_scratch<T>(work: impl FnOnce(&mut [u8]) -> T) -> T {
    SCRATCH.with_borrow_mut(|scratch| work(scratch))
}

/// Takes one complete line out of `pending`, without its CRLF, freeing
/// the buffer's memory once nothing is left.
pub fn take_line(pending: &mut Vec<u8>) -> Option<Vec<u8>> {
    let end = pending.iter().position(|&byte| byte == b'\n')?;
    let mut line: Vec<u8> = pending.drain(..=end).collect();
    if pending.is_empty() {
        *pending = Vec::new();
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Some(line)
}

/// Hands received TLS bytes to rustls and processes the records.
pub fn feed_tls(tls: &mut ClientConnection, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        tls.read_tls(&mut bytes)?;
        tls.process_new_packets()
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
    }
    Ok(())
}

/// Moves decrypted bytes into `pending`. Returns true once the peer has
/// sent close_notify.
pub fn drain_plaintext(
    tls: &mut ClientConnection,
    scratch: &mut [u8],
    pending: &mut Vec<u8>,
) -> io::Result<bool> {
    loop {
        match tls.reader().read(scratch) {
            Ok(0) => return Ok(true),
            Ok(count) => pending.extend_from_slice(&scratch[..count]),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(err) => return Err(err),
        }
    }
}

/// `io::Write` over a non-blocking tokio socket, for rustls's `write_tls`.
struct SocketWriter<'a>(&'a TcpStream);

impl Write for SocketWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.try_write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_split_across_reads() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let (mut socket, _) = listener.accept().await.unwrap();
            socket.write_all(b"* OK hel").await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            socket
                .write_all(b"lo\r\n* 1 EXISTS\r\nlast\n")
                .await
                .unwrap();
        });
        let mut connection = Connection::plain(TcpStream::connect(address).await.unwrap());
        assert_eq!(
            connection.read_line().await.unwrap().unwrap(),
            b"* OK hello"
        );
        assert_eq!(
            connection.read_line().await.unwrap().unwrap(),
            b"* 1 EXISTS"
        );
        assert_eq!(connection.read_line().await.unwrap().unwrap(), b"last");
        assert!(
            connection.pending.capacity() == 0,
            "an emptied line buffer is freed"
        );
        server.await.unwrap();
        assert!(connection.read_line().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn literal_bytes_split_across_reads() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let (mut socket, _) = listener.accept().await.unwrap();
            socket
                .write_all(b"* 1 FETCH (BODY[HEADER] {9}\r\nA: 1")
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            socket.write_all(b"\r\nB\r\n)\r\n").await.unwrap();
        });
        let mut connection = Connection::plain(TcpStream::connect(address).await.unwrap());
        assert_eq!(
            connection.read_line().await.unwrap().unwrap(),
            b"* 1 FETCH (BODY[HEADER] {9}"
        );
        assert_eq!(
            connection.read_bytes(9).await.unwrap().unwrap(),
            b"A: 1\r\nB\r\n"
        );
        assert_eq!(connection.read_line().await.unwrap().unwrap(), b")");
        server.await.unwrap();
        assert!(connection.read_bytes(1).await.unwrap().is_none());
        assert!(connection.read_bytes(LITERAL_BYTES_MAX + 1).await.is_err());
    }

    #[tokio::test]
    async fn overlong_line_is_an_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let (mut socket, _) = listener.accept().await.unwrap();
            let _ = socket.write_all(&vec![b'x'; LINE_BYTES_MAX + 10]).await;
            socket
        });
        let mut connection = Connection::plain(TcpStream::connect(address).await.unwrap());
        let err = connection.read_line().await.unwrap_err();
        assert!(err.to_string().contains("longer than"), "{err}");
        drop(server.await.unwrap());
    }
}
