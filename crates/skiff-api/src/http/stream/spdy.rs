//! A SPDY/3.1 server connection over a byte transport (the upgraded HTTP/1.1 connection, or the
//! binary messages of a `SPDY/3.1+portforward.k8s.io` WebSocket): one task reads and
//! dispatches frames, one writes. The peer opens the streams (odd ids); the server answers each
//! with SYN_REPLY or RST_STREAM and hands accepted ones to the session.
//!
//! Flow control is not enforced in either direction: kubectl's spdystream never sends
//! WINDOW_UPDATE (a sender honouring the 64 KiB window would stall) and ignores the ones it
//! gets. Backpressure is TCP's: the reader waits while a stream's queue is full.

use std::collections::HashMap;
use std::io::IoSlice;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::frame::{self, Decoder, Encoder, Frame, Headers};

/// Bytes read from the transport at a time.
const READ_CHUNK: usize = 256 * 1024;
/// Chunks queued towards one stream's consumer before the reader waits.
const INBOUND_DEPTH: usize = 16;
/// Frames queued towards the writer.
const OUT_DEPTH: usize = 256;
/// How long a write may still block after the connection's reader has ended.
const WRITE_GRACE: Duration = Duration::from_secs(5);

/// The reading half of a transport.
pub enum Reader {
    Raw(Box<dyn AsyncRead + Send + Unpin>),
    Ws(SplitStream<WebSocket>),
}

impl Reader {
    /// Appends what arrives to `buf`; Ok(0) at the end.
    async fn read(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            Reader::Raw(r) => {
                buf.reserve(READ_CHUNK);
                r.read_buf(buf).await
            }
            Reader::Ws(s) => loop {
                match s.next().await {
                    None | Some(Ok(Message::Close(_))) => return Ok(0),
                    Some(Err(e)) => return Err(std::io::Error::other(e)),
                    Some(Ok(Message::Binary(b))) => {
                        if b.is_empty() {
                            continue;
                        }
                        let n = b.len();
                        if buf.is_empty() {
                            *buf = BytesMut::from(b);
                        } else {
                            buf.extend_from_slice(&b);
                        }
                        return Ok(n);
                    }
                    Some(Ok(Message::Text(_))) => {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            "text message in a SPDY tunnel",
                        ))
                    }
                    Some(Ok(_)) => continue,
                }
            },
        }
    }
}

/// The writing half of a transport.
pub enum Writer {
    Raw(Box<dyn AsyncWrite + Send + Unpin>),
    Ws(SplitSink<WebSocket, Message>),
}

/// What the writer sends: a whole control frame, or a DATA frame's header and payload.
pub enum Out {
    Control(Bytes),
    Data { id: u32, fin: bool, body: Bytes },
}

/// Payloads up to this size are copied next to their header (one write, one WebSocket
/// message); bigger ones go out as they are.
const COALESCE: usize = 16 * 1024;

impl Writer {
    async fn write_batch(&mut self, batch: &mut Vec<Out>) -> std::io::Result<()> {
        match self {
            Writer::Raw(w) => {
                let mut small = BytesMut::new();
                let mut parts: Vec<Bytes> = Vec::with_capacity(batch.len() * 2);
                for o in batch.drain(..) {
                    match o {
                        Out::Control(b) => small.extend_from_slice(&b),
                        Out::Data { id, fin, body } => {
                            small.extend_from_slice(&frame::data_header(id, fin, body.len()));
                            if body.len() <= COALESCE {
                                small.extend_from_slice(&body);
                            } else {
                                parts.push(small.split().freeze());
                                parts.push(body);
                            }
                        }
                    }
                }
                if !small.is_empty() {
                    parts.push(small.freeze());
                }
                write_all_vectored(w, &parts).await?;
                w.flush().await
            }
            Writer::Ws(s) => {
                for o in batch.drain(..) {
                    match o {
                        Out::Control(b) => s.feed(Message::Binary(b)).await,
                        Out::Data { id, fin, body } => {
                            let head = frame::data_header(id, fin, body.len());
                            if body.len() <= COALESCE {
                                let mut b = BytesMut::with_capacity(8 + body.len());
                                b.extend_from_slice(&head);
                                b.extend_from_slice(&body);
                                s.feed(Message::Binary(b.freeze())).await
                            } else {
                                // The tunnel is a byte stream: header and payload may travel
                                // in separate messages.
                                s.feed(Message::Binary(Bytes::copy_from_slice(&head)))
                                    .await
                                    .map_err(std::io::Error::other)?;
                                s.feed(Message::Binary(body)).await
                            }
                        }
                    }
                    .map_err(std::io::Error::other)?;
                }
                s.flush().await.map_err(std::io::Error::other)
            }
        }
    }

    async fn shutdown(&mut self) {
        match self {
            Writer::Raw(w) => {
                let _ = w.shutdown().await;
            }
            Writer::Ws(s) => {
                let _ = s
                    .send(Message::Close(Some(CloseFrame {
                        code: 1000,
                        reason: "".into(),
                    })))
                    .await;
            }
        }
    }
}

async fn write_all_vectored(
    w: &mut (dyn AsyncWrite + Send + Unpin),
    parts: &[Bytes],
) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|b| IoSlice::new(b)).collect();
    let mut bufs = &mut slices[..];
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        let n = w.write_vectored(bufs).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

/// Limits of one connection.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Streams open at once (more are refused with RST_STREAM REFUSED_STREAM).
    pub max_streams: usize,
    /// The connection ends after this long without a frame in either direction (the
    /// kubelet's streaming-connection-idle-timeout, 4 h).
    pub idle_timeout: Duration,
}

/// The sending side of one stream.
#[derive(Clone)]
pub struct StreamOut {
    id: u32,
    tx: mpsc::Sender<Out>,
}

impl StreamOut {
    /// Queues a DATA frame; false when the connection is gone.
    pub async fn data(&self, body: Bytes) -> bool {
        if body.is_empty() {
            return true;
        }
        self.tx
            .send(Out::Data {
                id: self.id,
                fin: false,
                body,
            })
            .await
            .is_ok()
    }

    /// Half-closes the stream (an empty DATA frame with FIN).
    pub async fn fin(&self) {
        let _ = self
            .tx
            .send(Out::Data {
                id: self.id,
                fin: true,
                body: Bytes::new(),
            })
            .await;
    }

    pub async fn reset(&self, status: u32) {
        let _ = self
            .tx
            .send(Out::Control(frame::rst_stream(self.id, status)))
            .await;
    }
}

/// A stream the peer opened and the server accepted.
pub struct Stream {
    pub id: u32,
    pub headers: Headers,
    /// What the peer sends; ends at its FIN (or RST, or the connection's end).
    pub inbound: mpsc::Receiver<Bytes>,
    pub out: StreamOut,
    /// Cancelled when the peer resets the stream or the connection ends.
    pub reset: CancellationToken,
    _alive: Arc<()>,
    _permit: OwnedSemaphorePermit,
}

impl Stream {
    pub fn header(&self, name: &str) -> Option<&str> {
        frame::header(&self.headers, name)
    }
}

struct Entry {
    inbound: Option<mpsc::Sender<Bytes>>,
    reset: CancellationToken,
    alive: Weak<()>,
}

/// A running connection: its accepted streams arrive on `streams`.
pub struct Conn {
    pub streams: mpsc::Receiver<Stream>,
    out: mpsc::Sender<Out>,
    /// Cancelled when the reader has ended (peer gone, protocol error, idle, or [`Conn::stop`]).
    pub closed: CancellationToken,
    stop: CancellationToken,
}

/// Decides whether a new stream is accepted: `Err(status)` resets it.
pub type Accept = Box<dyn FnMut(&Headers) -> Result<(), u32> + Send>;

impl Conn {
    /// Starts the reader and writer tasks.
    pub fn start(reader: Reader, writer: Writer, limits: Limits, accept: Accept) -> Conn {
        let (out_tx, out_rx) = mpsc::channel(OUT_DEPTH);
        let (streams_tx, streams) = mpsc::channel(limits.max_streams.max(1));
        let closed = CancellationToken::new();
        let stop = CancellationToken::new();
        let activity = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        tokio::spawn(write_loop(
            writer,
            out_rx,
            activity.clone(),
            epoch,
            closed.clone(),
        ));
        let r = ReadLoop {
            out: out_tx.clone(),
            streams: streams_tx,
            accept,
            limits,
            table: HashMap::new(),
            permits: Arc::new(Semaphore::new(limits.max_streams)),
            last_id: 0,
            goaway: false,
            enc: Encoder::new(),
            conn_token: closed.child_token(),
            activity,
            epoch,
            stop: stop.clone(),
        };
        let (c, s) = (closed.clone(), stop.clone());
        tokio::spawn(async move {
            let res = r.run(reader, s).await;
            if let Err(e) = res {
                tracing::debug!("SPDY connection ended: {e}");
            }
            c.cancel();
        });
        Conn {
            streams,
            out: out_tx,
            closed,
            stop,
        }
    }

    /// Ends the session: GOAWAY, then the reader keeps draining until the peer closes or
    /// `linger` passes (closing first could reset the connection under data the peer has
    /// not read yet).
    pub async fn finish(self, linger: Duration) {
        let _ = self
            .out
            .send(Out::Control(frame::goaway(0, frame::GOAWAY_OK)))
            .await;
        drop(self.out);
        drop(self.streams);
        let _ = tokio::time::timeout(linger, self.closed.cancelled()).await;
        self.stop.cancel();
    }

    /// Ends the connection now.
    pub fn abort(&self) {
        self.stop.cancel();
    }
}

async fn write_loop(
    mut w: Writer,
    mut rx: mpsc::Receiver<Out>,
    activity: Arc<AtomicU64>,
    epoch: Instant,
    closed: CancellationToken,
) {
    let mut batch = Vec::with_capacity(64);
    loop {
        let n = tokio::select! {
            biased;
            n = rx.recv_many(&mut batch, 64) => n,
            // The reader has ended (peer gone, protocol error): send what is queued, then stop.
            _ = closed.cancelled() => {
                while let Ok(o) = rx.try_recv() {
                    batch.push(o);
                }
                if !batch.is_empty() {
                    let _ = w.write_batch(&mut batch).await;
                }
                break;
            }
        };
        if n == 0 {
            break;
        }
        activity.store(epoch.elapsed().as_secs(), Ordering::Relaxed);
        // A peer that stops reading must not hold this task once the connection is over.
        let abandoned = async {
            closed.cancelled().await;
            tokio::time::sleep(WRITE_GRACE).await;
        };
        let written = tokio::select! {
            r = w.write_batch(&mut batch) => r,
            _ = abandoned => Err(std::io::ErrorKind::TimedOut.into()),
        };
        if let Err(e) = written {
            tracing::debug!("SPDY write: {e}");
            // Nothing more reaches the peer; let senders notice.
            rx.close();
            return;
        }
    }
    w.shutdown().await;
}

struct ReadLoop {
    out: mpsc::Sender<Out>,
    streams: mpsc::Sender<Stream>,
    accept: Accept,
    limits: Limits,
    table: HashMap<u32, Entry>,
    permits: Arc<Semaphore>,
    last_id: u32,
    goaway: bool,
    enc: Encoder,
    conn_token: CancellationToken,
    activity: Arc<AtomicU64>,
    epoch: Instant,
    stop: CancellationToken,
}

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Frame(#[from] frame::FrameError),
    #[error("idle for {0:?}")]
    Idle(Duration),
}

impl ReadLoop {
    async fn run(mut self, mut reader: Reader, stop: CancellationToken) -> Result<(), ReadError> {
        let mut dec = Decoder::new();
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let res = loop {
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(f)) => self.handle(f).await,
                    Ok(None) => break,
                    Err(e) => {
                        let _ = self
                            .out
                            .send(Out::Control(frame::goaway(
                                self.last_id,
                                frame::GOAWAY_PROTOCOL_ERROR,
                            )))
                            .await;
                        self.end();
                        return Err(e.into());
                    }
                }
            }
            let idle = self.limits.idle_timeout;
            let read = tokio::select! {
                r = tokio::time::timeout(idle, reader.read(&mut buf)) => r,
                _ = stop.cancelled() => break Ok(()),
            };
            match read {
                Ok(Ok(0)) => break Ok(()),
                Ok(Ok(_)) => {
                    self.activity
                        .store(self.epoch.elapsed().as_secs(), Ordering::Relaxed);
                }
                Ok(Err(e)) => break Err(e.into()),
                Err(_) => {
                    let last = Duration::from_secs(self.activity.load(Ordering::Relaxed));
                    if self.epoch.elapsed().saturating_sub(last) >= idle {
                        break Err(ReadError::Idle(idle));
                    }
                }
            }
        };
        self.end();
        res
    }

    /// The connection is over: every stream sees its end.
    fn end(&mut self) {
        self.conn_token.cancel();
        self.table.clear();
    }

    async fn send(&mut self, o: Out) {
        let _ = self.out.send(o).await;
    }

    async fn handle(&mut self, f: Frame) {
        match f {
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                let Some(e) = self.table.get_mut(&stream_id) else {
                    return;
                };
                if !data.is_empty() {
                    if let Some(tx) = &e.inbound {
                        // A full queue holds the whole connection (TCP backpressure), but not
                        // forever: the connection ends when stopped or idle that long.
                        let sent = tokio::select! {
                            r = tx.send(data) => r.is_ok(),
                            _ = self.stop.cancelled() => false,
                            _ = tokio::time::sleep(self.limits.idle_timeout) => {
                                self.stop.cancel();
                                false
                            }
                        };
                        if !sent {
                            e.inbound = None;
                        }
                    }
                }
                if fin {
                    e.inbound = None;
                }
            }
            Frame::Headers { stream_id, fin, .. } => {
                if fin {
                    if let Some(e) = self.table.get_mut(&stream_id) {
                        e.inbound = None;
                    }
                }
            }
            Frame::SynStream {
                stream_id,
                fin,
                unidirectional,
                headers,
                ..
            } => {
                self.syn_stream(stream_id, fin || unidirectional, headers)
                    .await
            }
            Frame::RstStream { stream_id, .. } => {
                if let Some(e) = self.table.remove(&stream_id) {
                    e.reset.cancel();
                }
            }
            Frame::Ping { id } => {
                // Odd ids are the client's: echo. Even ones would answer our pings (none).
                if !id.is_multiple_of(2) {
                    self.send(Out::Control(frame::ping(id))).await;
                }
            }
            Frame::GoAway { .. } => self.goaway = true,
            Frame::SynReply { .. }
            | Frame::Settings { .. }
            | Frame::WindowUpdate { .. }
            | Frame::Unknown { .. } => {}
        }
    }

    async fn syn_stream(&mut self, id: u32, remote_fin: bool, headers: Headers) {
        if id.is_multiple_of(2) || id <= self.last_id {
            self.send(Out::Control(frame::rst_stream(
                id,
                frame::RST_PROTOCOL_ERROR,
            )))
            .await;
            return;
        }
        self.last_id = id;
        if self.goaway {
            self.send(Out::Control(frame::rst_stream(
                id,
                frame::RST_REFUSED_STREAM,
            )))
            .await;
            return;
        }
        if self.table.len() >= self.limits.max_streams {
            self.table.retain(|_, e| e.alive.strong_count() > 0);
        }
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) if self.table.len() < self.limits.max_streams * 2 => p,
            _ => {
                self.send(Out::Control(frame::rst_stream(
                    id,
                    frame::RST_REFUSED_STREAM,
                )))
                .await;
                return;
            }
        };
        if let Err(status) = (self.accept)(&headers) {
            self.send(Out::Control(frame::rst_stream(id, status))).await;
            return;
        }
        let (tx, inbound) = mpsc::channel(INBOUND_DEPTH);
        let reset = self.conn_token.child_token();
        let alive = Arc::new(());
        // The reply goes out before anything the session writes on the stream.
        let reply = self.enc.syn_reply(id, false, &[]);
        self.send(Out::Control(reply)).await;
        let stream = Stream {
            id,
            headers,
            inbound,
            out: StreamOut {
                id,
                tx: self.out.clone(),
            },
            reset: reset.clone(),
            _alive: alive.clone(),
            _permit: permit,
        };
        if self.streams.try_send(stream).is_err() {
            self.send(Out::Control(frame::rst_stream(
                id,
                frame::RST_REFUSED_STREAM,
            )))
            .await;
            return;
        }
        self.table.insert(
            id,
            Entry {
                inbound: (!remote_fin).then_some(tx),
                reset,
                alive: Arc::downgrade(&alive),
            },
        );
    }
}
