//! The client's end of a link: TCP connect, handshake, then sealed
//! records, as async halves that a reader task and a writer task can own.
//!
//! ```text
//!   connect ─▶ ClientHello ─▶ greeting [─▶ RelayAuth] ─▶ check relay key (caller's pin) ─▶ ClientAuth | ClientFinished ─▶ Welcome
//!          └─▶ LinkReader (FrameBuffer ▶ RecordOpener ▶ RelayMsg)   LinkWriter (ClientMsg ▶ RecordSealer)
//! ```

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use hush_crypto::{Identity, PublicIdentity};
use hush_proto::frame::{self, FrameBuffer};
use hush_proto::handshake::{self, HandshakeError};
use hush_proto::ticket::ClientTicket;
use hush_proto::{ClientMsg, RecordOpener, RecordSealer, RelayMsg, Welcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// How long the whole handshake may take before the client gives up.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a link could not be set up or broke.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The TCP connection failed or broke.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The handshake failed.
    #[error("{0}")]
    Handshake(#[from] HandshakeError),
    /// The relay's key is not the one pinned for it.
    #[error("{0}")]
    RelayKeyRefused(String),
    /// The relay closed the connection.
    #[error("the relay closed the connection")]
    Closed,
    /// The relay took too long to answer the handshake.
    #[error("the relay did not complete the handshake within {0:?}")]
    Timeout(Duration),
    /// The relay sent bytes that are not a valid frame or record.
    #[error("the relay sent invalid data: {0}")]
    Protocol(String),
}

/// An established link.
pub struct Connection {
    /// Receiving half.
    pub reader: LinkReader,
    /// Sending half.
    pub writer: LinkWriter,
    /// What the relay said in its Welcome.
    pub welcome: Welcome,
    /// The relay's (verified) identity.
    pub relay: PublicIdentity,
    /// A ticket to resume the next connection to this relay with.
    pub ticket: Option<ClientTicket>,
    /// Whether this connection resumed a ticket (no RSA was needed).
    pub resumed: bool,
}

impl Connection {
    /// Connects to `addr` and runs the handshake as `identity`.
    /// `check_relay` sees the relay's key before anything is sent under it
    /// (pinning); returning an error aborts.
    ///
    /// # Errors
    /// [`LinkError`] saying what failed.
    pub async fn connect(
        addr: &str,
        identity: Arc<Identity>,
        max_frame: usize,
        check_relay: impl FnOnce(&PublicIdentity) -> Result<(), String>,
    ) -> Result<Self, LinkError> {
        Self::connect_resuming(addr, identity, max_frame, None, check_relay).await
    }

    /// As [`Self::connect`], offering `ticket` (from the last connection
    /// to this relay) to resume without RSA; the relay may decline, and
    /// the handshake is then a full one.
    ///
    /// # Errors
    /// [`LinkError`] saying what failed.
    pub async fn connect_resuming(
        addr: &str,
        identity: Arc<Identity>,
        max_frame: usize,
        ticket: Option<ClientTicket>,
        check_relay: impl FnOnce(&PublicIdentity) -> Result<(), String>,
    ) -> Result<Self, LinkError> {
        let stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        match tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            Self::handshake(stream, identity, max_frame, ticket, check_relay),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(LinkError::Timeout(HANDSHAKE_TIMEOUT)),
        }
    }

    async fn handshake(
        mut stream: TcpStream,
        identity: Arc<Identity>,
        max_frame: usize,
        ticket: Option<ClientTicket>,
        check_relay: impl FnOnce(&PublicIdentity) -> Result<(), String>,
    ) -> Result<Self, LinkError> {
        // Until the relay has proved its key, frames are handshake-sized.
        let mut fb = FrameBuffer::new(handshake::MAX_HANDSHAKE_FRAME);
        let (state, hello) = handshake::client_start_resuming(identity, ticket, max_frame);
        write_frame(&mut stream, &hello, max_frame).await?;
        let greeting = read_frame(&mut stream, &mut fb).await?;
        let known = match state.on_greeting(&greeting)? {
            handshake::ClientGreeted::Resumed(known) => known,
            handshake::ClientGreeted::AwaitingRelayAuth(awaiting) => {
                let proof = read_frame(&mut stream, &mut fb).await?;
                awaiting.on_relay_auth(&proof)?
            }
        };
        check_relay(known.relay()).map_err(LinkError::RelayKeyRefused)?;
        let resumed = known.is_resumed();
        let (state, auth) = known.authenticate()?;
        stream.write_all(&auth).await?;
        fb.set_limit(state.max_record_wire());
        let record = read_frame(&mut stream, &mut fb).await?;
        let handshake::ClientLinked {
            link,
            welcome,
            relay,
            ticket,
        } = state.on_welcome(&record)?;
        let (rd, wr) = stream.into_split();
        Ok(Self {
            reader: LinkReader {
                rd,
                fb,
                opener: link.opener,
                pending: VecDeque::new(),
                bytes_read: 0,
            },
            writer: LinkWriter {
                wr,
                sealer: link.sealer,
                wire: Vec::new(),
            },
            welcome,
            relay,
            ticket,
            resumed,
        })
    }
}

async fn read_frame(stream: &mut TcpStream, fb: &mut FrameBuffer) -> Result<Vec<u8>, LinkError> {
    loop {
        if let Some(f) = fb
            .next_frame()
            .map_err(|e| LinkError::Protocol(e.to_string()))?
        {
            return Ok(f);
        }
        let n = stream.read(fb.read_space()).await?;
        if n == 0 {
            return Err(LinkError::Closed);
        }
        fb.advance(n);
    }
}

async fn write_frame(stream: &mut TcpStream, body: &[u8], limit: usize) -> Result<(), LinkError> {
    let mut out = Vec::with_capacity(body.len() + frame::LENGTH_PREFIX);
    frame::encode_frame(body, limit, &mut out).map_err(|e| LinkError::Protocol(e.to_string()))?;
    stream.write_all(&out).await?;
    Ok(())
}

/// Receives and opens the relay's records.
pub struct LinkReader {
    rd: OwnedReadHalf,
    fb: FrameBuffer,
    opener: RecordOpener,
    pending: VecDeque<RelayMsg>,
    bytes_read: u64,
}

impl LinkReader {
    /// Bytes received from the relay since the handshake (for `hush bench`).
    #[must_use]
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The next message from the relay. Cancel-safe: a message is never
    /// lost if the future is dropped.
    ///
    /// # Errors
    /// [`LinkError::Closed`] at end of stream, or a protocol error.
    pub async fn recv(&mut self) -> Result<RelayMsg, LinkError> {
        loop {
            if let Some(m) = self.pending.pop_front() {
                return Ok(m);
            }
            if let Some(record) = self
                .fb
                .next_frame_mut()
                .map_err(|e| LinkError::Protocol(e.to_string()))?
            {
                self.opener
                    .open_into(record, &mut self.pending)
                    .map_err(|e| LinkError::Protocol(e.to_string()))?;
                continue;
            }
            let n = self.rd.read(self.fb.read_space()).await?;
            self.bytes_read += n as u64;
            if n == 0 {
                return Err(LinkError::Closed);
            }
            self.fb.advance(n);
        }
    }
}

/// Seals and sends messages to the relay.
pub struct LinkWriter {
    wr: OwnedWriteHalf,
    sealer: RecordSealer,
    wire: Vec<u8>,
}

impl LinkWriter {
    /// Sends one message.
    ///
    /// # Errors
    /// If the message is too large or the connection broke.
    pub async fn send(&mut self, msg: &ClientMsg) -> Result<(), LinkError> {
        self.send_all(std::slice::from_ref(msg)).await
    }

    /// Sends several messages, sealed together where they fit.
    ///
    /// # Errors
    /// If a message is too large or the connection broke.
    pub async fn send_all(&mut self, msgs: &[ClientMsg]) -> Result<(), LinkError> {
        for m in msgs {
            self.sealer
                .push(m)
                .map_err(|e| LinkError::Protocol(e.to_string()))?;
        }
        self.wire.clear();
        self.sealer
            .seal_pending(&mut self.wire)
            .map_err(|e| LinkError::Protocol(e.to_string()))?;
        self.wr.write_all(&self.wire).await?;
        Ok(())
    }

    /// Writes bytes as they are, bypassing sealing. Only for tests that
    /// play a hostile or broken peer.
    ///
    /// # Errors
    /// If the socket fails.
    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        self.wr.write_all(bytes).await?;
        Ok(())
    }

    /// Closes the sending direction.
    ///
    /// # Errors
    /// If the socket fails.
    pub async fn shutdown(&mut self) -> Result<(), LinkError> {
        self.wr.shutdown().await?;
        Ok(())
    }
}
