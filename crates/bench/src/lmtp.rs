//! A minimal LMTP client (RFC 2033) for `notify`: one connection, one
//! recipient per transaction.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::system::monotonic_ns;

/// Maximum length of a reply line from the LMTP server, in bytes.
const REPLY_LINE_BYTES_MAX: u64 = 4096;

/// Maximum lines in one multi-line reply.
const REPLY_LINES_MAX: usize = 100;

/// Maximum wait for one reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct LmtpClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

/// The result of one delivery.
#[derive(Debug)]
pub struct Delivered {
    /// CLOCK_MONOTONIC after the final dot of DATA was written.
    pub sent_ns: u64,
    /// `Err` contains the server's rejection.
    pub accepted: Result<(), String>,
}

impl LmtpClient {
    /// Connects, reads the greeting and sends LHLO.
    pub async fn connect(address: SocketAddr) -> anyhow::Result<LmtpClient> {
        let stream = tokio::time::timeout(REPLY_TIMEOUT, TcpStream::connect(address))
            .await
            .map_err(|_| anyhow!("LMTP connect to {address} timed out"))?
            .with_context(|| format!("LMTP connect to {address} failed"))?;
        let (read, writer) = stream.into_split();
        let mut client = LmtpClient {
            reader: BufReader::new(read),
            writer,
        };
        let greeting = client.reply().await?;
        if !greeting.starts_with("220") {
            bail!("LMTP greeting from {address} is not 220: {greeting}");
        }
        let hello = client.command("LHLO roost-bench.localhost\r\n").await?;
        if !hello.starts_with("250") {
            bail!("LMTP LHLO rejected by {address}: {hello}");
        }
        Ok(client)
    }

    /// Delivers `message` (CRLF line endings, no line starting with a dot)
    /// to `recipient`.
    pub async fn deliver(&mut self, recipient: &str, message: &[u8]) -> anyhow::Result<Delivered> {
        let reply = self
            .command("MAIL FROM:<roost-bench@localhost>\r\n")
            .await?;
        if !reply.starts_with("250") {
            return Ok(Delivered {
                sent_ns: monotonic_ns(),
                accepted: Err(format!("MAIL FROM: {reply}")),
            });
        }

        let reply = self.command(&format!("RCPT TO:<{recipient}>\r\n")).await?;
        if !reply.starts_with("250") {
            self.command("RSET\r\n").await?;
            return Ok(Delivered {
                sent_ns: monotonic_ns(),
                accepted: Err(format!("RCPT TO:<{recipient}>: {reply}")),
            });
        }

        let reply = self.command("DATA\r\n").await?;
        if !reply.starts_with("354") {
            self.command("RSET\r\n").await?;
            return Ok(Delivered {
                sent_ns: monotonic_ns(),
                accepted: Err(format!("DATA: {reply}")),
            });
        }

        self.writer.write_all(message).await?;
        self.writer.write_all(b".\r\n").await?;
        let sent_ns = monotonic_ns();
        // LMTP sends one reply per recipient after the dot, and each
        // transaction here has one recipient.
        let reply = self.reply().await?;
        let accepted = if reply.starts_with("250") {
            Ok(())
        } else {
            Err(format!("end of DATA for {recipient}: {reply}"))
        };
        Ok(Delivered { sent_ns, accepted })
    }

    pub async fn quit(mut self) {
        let _ = self.command("QUIT\r\n").await;
    }

    async fn command(&mut self, line: &str) -> anyhow::Result<String> {
        self.writer
            .write_all(line.as_bytes())
            .await
            .context("writing to the LMTP server failed")?;
        self.reply().await
    }

    /// Reads one reply, joining the lines of a multi-line reply with " / ".
    async fn reply(&mut self) -> anyhow::Result<String> {
        let mut joined = String::new();
        for _ in 0..REPLY_LINES_MAX {
            let mut line = String::new();
            let read = tokio::time::timeout(
                REPLY_TIMEOUT,
                (&mut self.reader)
                    .take(REPLY_LINE_BYTES_MAX)
                    .read_line(&mut line),
            )
            .await
            .map_err(|_| anyhow!("no LMTP reply within {REPLY_TIMEOUT:?}"))?
            .context("reading from the LMTP server failed")?;
            if read == 0 {
                bail!("the LMTP server closed the connection");
            }
            if !line.ends_with('\n') {
                bail!("LMTP reply line longer than {REPLY_LINE_BYTES_MAX} bytes");
            }
            let line = line.trim_end();
            if !joined.is_empty() {
                joined.push_str(" / ");
            }
            joined.push_str(line);
            // "250-" continues a reply, "250 " or a bare "250" ends it.
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(joined);
            }
        }
        bail!("LMTP reply has more than {REPLY_LINES_MAX} lines")
    }
}

/// Builds the small test message for delivery `number` to `recipient`.
pub fn message(number: u64, recipient: &str) -> Vec<u8> {
    format!(
        "From: roost-bench <roost-bench@localhost>\r\nTo: <{recipient}>\r\nSubject: roost-bench notify {number}\r\nMessage-ID: <notify-{number}-{}@roost-bench.localhost>\r\n\r\nDelivery {number} of a roost-bench notify run.\r\n",
        monotonic_ns()
    )
    .into_bytes()
}
