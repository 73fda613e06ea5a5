//! The byte pipes between a streaming session (SPDY streams or WebSocket channels) and the
//! node: an `AsyncRead` fed by a channel of chunks, an `AsyncWrite` that turns each write into a
//! chunk. Chunks are `Bytes`, so the session forwards them without copying.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

use crate::node::{StreamIo, TermSize};

/// The largest chunk one write becomes (a bigger write is taken in parts).
pub const MAX_CHUNK: usize = 128 * 1024;
/// Chunks queued per pipe before the writer waits (bounds memory per stream).
pub const PIPE_DEPTH: usize = 16;

/// Reads the chunks sent on a channel; EOF when every sender is gone.
pub struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl ChannelReader {
    pub fn new(rx: mpsc::Receiver<Bytes>) -> Self {
        ChannelReader {
            rx,
            cur: Bytes::new(),
        }
    }
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        while self.cur.is_empty() {
            match ready!(self.rx.poll_recv(cx)) {
                Some(b) => self.cur = b,
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = self.cur.len().min(buf.remaining());
        let chunk = self.cur.split_to(n);
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

/// Sends each write as a chunk, optionally prefixed with a byte (the WebSocket channel
/// number), so the receiver can forward it as is.
pub struct ChannelWriter {
    tx: PollSender<Bytes>,
    prefix: Option<u8>,
}

impl ChannelWriter {
    pub fn new(tx: mpsc::Sender<Bytes>, prefix: Option<u8>) -> Self {
        ChannelWriter {
            tx: PollSender::new(tx),
            prefix,
        }
    }
}

fn gone() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client is gone")
}

impl AsyncWrite for ChannelWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(self.tx.poll_reserve(cx)).map_err(|_| gone())?;
        let n = buf.len().min(MAX_CHUNK);
        let mut b = BytesMut::with_capacity(n + 1);
        if let Some(p) = self.prefix {
            b.extend_from_slice(&[p]);
        }
        b.extend_from_slice(&buf[..n]);
        self.tx.send_item(b.freeze()).map_err(|_| gone())?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // The receiver sees the end once this writer is dropped or closed.
        self.tx.close();
        Poll::Ready(Ok(()))
    }
}

/// The session's ends of the pipes handed to the node as a [`StreamIo`].
pub struct SessionIo {
    pub stdin: Option<mpsc::Sender<Bytes>>,
    pub stdout: Option<mpsc::Receiver<Bytes>>,
    pub stderr: Option<mpsc::Receiver<Bytes>>,
    pub resize: Option<mpsc::Sender<TermSize>>,
}

/// Which streams a session carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// Pipes for `w`; `prefix` tags stdout/stderr chunks with channel numbers 1 and 2 (WebSocket).
pub fn pipes(w: Wanted, prefix: bool) -> (StreamIo, SessionIo) {
    let (stdin_tx, stdin) = if w.stdin {
        let (tx, rx) = mpsc::channel(PIPE_DEPTH);
        (
            Some(tx),
            Some(Box::pin(ChannelReader::new(rx)) as Pin<Box<dyn AsyncRead + Send>>),
        )
    } else {
        (None, None)
    };
    let out = |want: bool, ch: u8| {
        if want {
            let (tx, rx) = mpsc::channel(PIPE_DEPTH);
            let w = ChannelWriter::new(tx, prefix.then_some(ch));
            (
                Some(Box::pin(w) as Pin<Box<dyn AsyncWrite + Send>>),
                Some(rx),
            )
        } else {
            (None, None)
        }
    };
    let (stdout, stdout_rx) = out(w.stdout, 1);
    let (stderr, stderr_rx) = out(w.stderr && !w.tty, 2);
    let (resize_tx, resize) = if w.tty {
        let (tx, rx) = mpsc::channel(8);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    (
        StreamIo {
            stdin,
            stdout,
            stderr,
            resize,
        },
        SessionIo {
            stdin: stdin_tx,
            stdout: stdout_rx,
            stderr: stderr_rx,
            resize: resize_tx,
        },
    )
}

/// Parses the JSON terminal sizes (`{"Width":80,"Height":24}`, one after another) arriving in
/// pieces on a resize stream; a runaway value (over 4 KiB without a complete object) is
/// dropped.
#[derive(Default)]
pub struct ResizeParser {
    buf: Vec<u8>,
}

#[derive(serde::Deserialize)]
struct Size {
    #[serde(rename = "Width", default)]
    width: u16,
    #[serde(rename = "Height", default)]
    height: u16,
}

impl ResizeParser {
    pub fn push(&mut self, data: &[u8]) -> Vec<TermSize> {
        self.buf.extend_from_slice(data);
        let mut sizes = Vec::new();
        let mut consumed = 0;
        {
            let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Size>();
            loop {
                match it.next() {
                    Some(Ok(s)) => {
                        consumed = it.byte_offset();
                        sizes.push(TermSize {
                            width: s.width,
                            height: s.height,
                        });
                    }
                    Some(Err(e)) if e.is_eof() => break,
                    Some(Err(_)) => {
                        // Not a size: skip what was read so far.
                        consumed = self.buf.len();
                        break;
                    }
                    None => {
                        consumed = self.buf.len();
                        break;
                    }
                }
            }
        }
        self.buf.drain(..consumed);
        if self.buf.len() > 4096 {
            self.buf.clear();
        }
        sizes
    }
}
