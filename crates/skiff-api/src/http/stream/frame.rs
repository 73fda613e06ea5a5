//! SPDY/3.1 framing, the subset a Kubernetes streaming server needs (exec, attach and
//! port-forward from kubectl's moby/spdystream client).
//!
//! Written here because no SPDY crate with a usable licence exists (spdy-mux is GPL-3.0 and
//! client-side only; images-serve-facts §5.2). Frames: SYN_STREAM, SYN_REPLY, RST_STREAM,
//! SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE (parsed, ignored: spdystream never sends or
//! honours windows) and DATA. Header blocks are one zlib stream per direction with the SPDY/3
//! preset dictionary, flushed (Z_SYNC_FLUSH) after each block.
//!
//! Everything the peer sends is hostile: control frames and decompressed header blocks are
//! bounded, DATA frames are handed out in pieces as they arrive (never buffered whole), and
//! every malformed input is an error, never a panic.

use std::sync::LazyLock;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The protocol version in every control frame.
pub const VERSION: u16 = 3;

/// The longest control frame payload accepted (kubectl's are a few hundred bytes).
pub const MAX_CONTROL_LEN: usize = 64 * 1024;
/// The largest decompressed header block accepted (zlib bombs stop here).
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// The most name/value pairs in one header block.
pub const MAX_HEADERS: usize = 256;
/// The longest DATA frame payload the protocol allows (24-bit length).
pub const MAX_DATA_LEN: usize = 0xff_ffff;

pub const TYPE_SYN_STREAM: u16 = 1;
pub const TYPE_SYN_REPLY: u16 = 2;
pub const TYPE_RST_STREAM: u16 = 3;
pub const TYPE_SETTINGS: u16 = 4;
pub const TYPE_PING: u16 = 6;
pub const TYPE_GOAWAY: u16 = 7;
pub const TYPE_HEADERS: u16 = 8;
pub const TYPE_WINDOW_UPDATE: u16 = 9;

pub const FLAG_FIN: u8 = 0x01;
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;

/// RST_STREAM status codes (SPDY/3 §2.6.3).
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_REFUSED_STREAM: u32 = 3;
pub const RST_CANCEL: u32 = 5;
pub const RST_STREAM_IN_USE: u32 = 8;

/// GOAWAY status codes.
pub const GOAWAY_OK: u32 = 0;
pub const GOAWAY_PROTOCOL_ERROR: u32 = 1;

/// A header block: lower-case names; a value holding NULs is several values of one name.
pub type Headers = Vec<(String, String)>;

/// The first value of header `name` (names are lower case on the wire).
pub fn header<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A piece of a DATA frame's payload; `fin` only on the last piece of a FIN frame.
    Data {
        stream_id: u32,
        fin: bool,
        data: Bytes,
    },
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        fin: bool,
        unidirectional: bool,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    /// SETTINGS: checked for shape, otherwise ignored (nothing a server here needs).
    Settings {
        entries: u32,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    /// A control frame type SPDY/3 does not define (the spec says: ignore it).
    Unknown {
        frame_type: u16,
    },
}

/// Why the byte stream is not SPDY/3 any more; the connection ends (GOAWAY) on any of these.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("unsupported SPDY version {0}")]
    UnsupportedVersion(u16),
    #[error("control frame of {0} bytes is longer than {MAX_CONTROL_LEN}")]
    ControlTooLong(usize),
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    #[error("header block: {0}")]
    HeaderBlock(String),
}

/// The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00 §2.6.10.1): the
/// listed words, each with a 4-byte big-endian length, then one run of text.
pub static DICTIONARY: LazyLock<Vec<u8>> = LazyLock::new(|| {
    const WORDS: &[&str] = &[
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &str = concat!(
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
        "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
        "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
        "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
        "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
        "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
        "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
    );
    let mut d = Vec::with_capacity(1423);
    for w in WORDS {
        d.extend_from_slice(&(w.len() as u32).to_be_bytes());
        d.extend_from_slice(w.as_bytes());
    }
    d.extend_from_slice(TAIL.as_bytes());
    d
});

/// An incremental frame decoder over a growing byte buffer (one per connection: it holds the
/// peer's header zlib stream).
pub struct Decoder {
    /// The DATA frame being handed out: stream, FIN flag, payload bytes still to come.
    data_left: Option<(u32, bool, usize)>,
    inflate: Decompress,
    /// The preset dictionary was given (once per stream; a second request is corrupt input).
    dict_set: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Decoder {
            data_left: None,
            inflate: Decompress::new(true),
            dict_set: false,
        }
    }

    /// The next frame (or DATA piece) from the front of `buf`, consuming its bytes; `None`
    /// when `buf` does not hold one yet (read more and call again).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if let Some((stream_id, fin, left)) = self.data_left {
            if buf.is_empty() {
                return Ok(None);
            }
            let n = left.min(buf.len());
            let data = buf.split_to(n).freeze();
            let left = left - n;
            self.data_left = (left > 0).then_some((stream_id, fin, left));
            return Ok(Some(Frame::Data {
                stream_id,
                fin: fin && left == 0,
                data,
            }));
        }
        if buf.len() < 8 {
            return Ok(None);
        }
        let w0 = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let flags = buf[4];
        let len = (u32::from_be_bytes([0, buf[5], buf[6], buf[7]])) as usize;
        if w0 & 0x8000_0000 == 0 {
            let stream_id = w0 & 0x7fff_ffff;
            if stream_id == 0 {
                return Err(FrameError::Malformed("DATA frame on stream 0"));
            }
            buf.advance(8);
            let fin = flags & FLAG_FIN != 0;
            if len == 0 {
                return Ok(Some(Frame::Data {
                    stream_id,
                    fin,
                    data: Bytes::new(),
                }));
            }
            self.data_left = Some((stream_id, fin, len));
            return self.decode(buf);
        }
        let version = ((w0 >> 16) & 0x7fff) as u16;
        let frame_type = (w0 & 0xffff) as u16;
        if version != VERSION {
            return Err(FrameError::UnsupportedVersion(version));
        }
        if len > MAX_CONTROL_LEN {
            return Err(FrameError::ControlTooLong(len));
        }
        if buf.len() < 8 + len {
            buf.reserve(8 + len - buf.len());
            return Ok(None);
        }
        buf.advance(8);
        let payload = buf.split_to(len);
        self.control(frame_type, flags, &payload).map(Some)
    }

    fn control(&mut self, frame_type: u16, flags: u8, p: &[u8]) -> Result<Frame, FrameError> {
        let word = |i: usize| -> Result<u32, FrameError> {
            p.get(i..i + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or(FrameError::Malformed("control frame too short"))
        };
        let fin = flags & FLAG_FIN != 0;
        let stream = |w: u32| -> Result<u32, FrameError> {
            match w & 0x7fff_ffff {
                0 => Err(FrameError::Malformed("stream id 0")),
                id => Ok(id),
            }
        };
        Ok(match frame_type {
            TYPE_SYN_STREAM => {
                let stream_id = stream(word(0)?)?;
                let associated_to = word(4)? & 0x7fff_ffff;
                let priority = p.get(8).copied().unwrap_or(0) >> 5;
                if p.len() < 10 {
                    return Err(FrameError::Malformed("SYN_STREAM too short"));
                }
                let headers = self.header_block(&p[10..])?;
                Frame::SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    fin,
                    unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                    headers,
                }
            }
            TYPE_SYN_REPLY | TYPE_HEADERS => {
                let stream_id = stream(word(0)?)?;
                let headers = self.header_block(&p[4..])?;
                if frame_type == TYPE_SYN_REPLY {
                    Frame::SynReply {
                        stream_id,
                        fin,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream_id,
                        fin,
                        headers,
                    }
                }
            }
            TYPE_RST_STREAM => {
                if p.len() != 8 {
                    return Err(FrameError::Malformed("RST_STREAM length"));
                }
                Frame::RstStream {
                    stream_id: stream(word(0)?)?,
                    status: word(4)?,
                }
            }
            TYPE_SETTINGS => {
                let entries = word(0)?;
                if (p.len() - 4) as u64 != u64::from(entries) * 8 {
                    return Err(FrameError::Malformed("SETTINGS length"));
                }
                Frame::Settings { entries }
            }
            TYPE_PING => {
                if p.len() != 4 {
                    return Err(FrameError::Malformed("PING length"));
                }
                Frame::Ping { id: word(0)? }
            }
            TYPE_GOAWAY => {
                if p.len() != 8 {
                    return Err(FrameError::Malformed("GOAWAY length"));
                }
                Frame::GoAway {
                    last_good_stream_id: word(0)? & 0x7fff_ffff,
                    status: word(4)?,
                }
            }
            TYPE_WINDOW_UPDATE => {
                if p.len() != 8 {
                    return Err(FrameError::Malformed("WINDOW_UPDATE length"));
                }
                Frame::WindowUpdate {
                    stream_id: word(0)? & 0x7fff_ffff,
                    delta: word(4)? & 0x7fff_ffff,
                }
            }
            frame_type => Frame::Unknown { frame_type },
        })
    }

    /// Inflates one header block from the peer's zlib stream and parses it.
    fn header_block(&mut self, input: &[u8]) -> Result<Headers, FrameError> {
        let bad = |m: String| FrameError::HeaderBlock(m);
        let mut out: Vec<u8> = Vec::with_capacity((input.len() * 4).clamp(64, MAX_HEADER_BLOCK));
        let mut used = 0usize;
        loop {
            if out.len() == out.capacity() {
                if out.capacity() >= MAX_HEADER_BLOCK {
                    return Err(bad(format!("larger than {MAX_HEADER_BLOCK} bytes")));
                }
                let more = out.capacity().min(MAX_HEADER_BLOCK - out.capacity());
                out.reserve_exact(more);
            }
            let (in0, out0) = (self.inflate.total_in(), out.len());
            let r = self
                .inflate
                .decompress_vec(&input[used..], &mut out, FlushDecompress::Sync);
            used += (self.inflate.total_in() - in0) as usize;
            match r {
                Err(e) if e.needs_dictionary().is_some() && !self.dict_set => {
                    self.dict_set = true;
                    self.inflate
                        .set_dictionary(&DICTIONARY)
                        .map_err(|e| bad(format!("dictionary: {e}")))?;
                }
                Err(e) => return Err(bad(e.to_string())),
                Ok(Status::StreamEnd) => {
                    return Err(bad("the zlib stream ended".into()));
                }
                Ok(_) => {
                    if used == input.len() && out.len() < out.capacity() {
                        break;
                    }
                    let progressed = self.inflate.total_in() != in0 || out.len() != out0;
                    if !progressed && out.len() < out.capacity() {
                        return Err(bad("truncated or corrupt".into()));
                    }
                }
            }
        }
        parse_header_block(&out)
    }
}

/// Parses an uncompressed header block (count, then length-prefixed names and values).
pub fn parse_header_block(b: &[u8]) -> Result<Headers, FrameError> {
    let bad = |m: &str| FrameError::HeaderBlock(m.to_string());
    let mut r = b;
    let mut take = |n: usize| -> Result<&[u8], FrameError> {
        if r.len() < n {
            return Err(bad("truncated"));
        }
        let (a, rest) = r.split_at(n);
        r = rest;
        Ok(a)
    };
    let count = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let n = count(take(4)?);
    if n > MAX_HEADERS {
        return Err(bad("too many headers"));
    }
    let mut h = Headers::with_capacity(n);
    for _ in 0..n {
        let len = count(take(4)?);
        let name = String::from_utf8_lossy(take(len)?).to_ascii_lowercase();
        if name.is_empty() {
            return Err(bad("empty header name"));
        }
        let len = count(take(4)?);
        let value = take(len)?;
        for v in value.split(|c| *c == 0) {
            h.push((name.clone(), String::from_utf8_lossy(v).into_owned()));
        }
    }
    if !r.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok(h)
}

/// Serialises an uncompressed header block (values of one name joined with NUL).
pub fn write_header_block(h: &[(&str, &str)]) -> Vec<u8> {
    let mut names: Vec<&str> = Vec::new();
    for (k, _) in h {
        if !names.contains(k) {
            names.push(k);
        }
    }
    let mut b = Vec::new();
    b.put_u32(names.len() as u32);
    for name in names {
        let values: Vec<&str> = h
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| *v)
            .collect();
        let value = values.join("\0");
        b.put_u32(name.len() as u32);
        b.extend_from_slice(name.to_ascii_lowercase().as_bytes());
        b.put_u32(value.len() as u32);
        b.extend_from_slice(value.as_bytes());
    }
    b
}

/// The control frame header: control bit, version, type, flags, 24-bit length.
fn control_header(b: &mut BytesMut, frame_type: u16, flags: u8, len: usize) {
    b.put_u16(0x8000 | VERSION);
    b.put_u16(frame_type);
    b.put_u32((u32::from(flags) << 24) | (len as u32 & 0xff_ffff));
}

/// The 8-byte header of a DATA frame.
pub fn data_header(stream_id: u32, fin: bool, len: usize) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[..4].copy_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
    let flags = if fin { u32::from(FLAG_FIN) } else { 0 };
    h[4..].copy_from_slice(&((flags << 24) | (len as u32 & 0xff_ffff)).to_be_bytes());
    h
}

/// A whole DATA frame (header and payload in one buffer; tests and small frames).
pub fn data_frame(stream_id: u32, fin: bool, data: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + data.len());
    b.extend_from_slice(&data_header(stream_id, fin, data.len()));
    b.extend_from_slice(data);
    b.freeze()
}

pub fn rst_stream(stream_id: u32, status: u32) -> Bytes {
    let mut b = BytesMut::with_capacity(16);
    control_header(&mut b, TYPE_RST_STREAM, 0, 8);
    b.put_u32(stream_id & 0x7fff_ffff);
    b.put_u32(status);
    b.freeze()
}

pub fn ping(id: u32) -> Bytes {
    let mut b = BytesMut::with_capacity(12);
    control_header(&mut b, TYPE_PING, 0, 4);
    b.put_u32(id);
    b.freeze()
}

pub fn goaway(last_good_stream_id: u32, status: u32) -> Bytes {
    let mut b = BytesMut::with_capacity(16);
    control_header(&mut b, TYPE_GOAWAY, 0, 8);
    b.put_u32(last_good_stream_id & 0x7fff_ffff);
    b.put_u32(status);
    b.freeze()
}

pub fn settings(entries: &[(u8, u32, u32)]) -> Bytes {
    let mut b = BytesMut::with_capacity(12 + entries.len() * 8);
    control_header(&mut b, TYPE_SETTINGS, 0, 4 + entries.len() * 8);
    b.put_u32(entries.len() as u32);
    for (flags, id, value) in entries {
        b.put_u32((u32::from(*flags) << 24) | (id & 0xff_ffff));
        b.put_u32(*value);
    }
    b.freeze()
}

pub fn window_update(stream_id: u32, delta: u32) -> Bytes {
    let mut b = BytesMut::with_capacity(16);
    control_header(&mut b, TYPE_WINDOW_UPDATE, 0, 8);
    b.put_u32(stream_id & 0x7fff_ffff);
    b.put_u32(delta & 0x7fff_ffff);
    b.freeze()
}

/// The sending half of header compression (one per connection, used in frame order).
pub struct Encoder {
    deflate: Compress,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    pub fn new() -> Self {
        let mut deflate = Compress::new(Compression::default(), true);
        // Cannot fail on a fresh stream; a failure would only lose the dictionary, which the
        // peer then refuses, so it is not worth a panic path.
        let _ = deflate.set_dictionary(&DICTIONARY);
        Encoder { deflate }
    }

    /// Compresses one header block, ending it with a sync flush.
    fn compress(&mut self, raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut used = 0usize;
        loop {
            if out.len() == out.capacity() {
                out.reserve(256);
            }
            let before = self.deflate.total_in();
            let _ = self
                .deflate
                .compress_vec(&raw[used..], &mut out, FlushCompress::Sync);
            used += (self.deflate.total_in() - before) as usize;
            if used == raw.len() && out.len() < out.capacity() {
                return out;
            }
        }
    }

    pub fn syn_reply(&mut self, stream_id: u32, fin: bool, headers: &[(&str, &str)]) -> Bytes {
        let block = self.compress(&write_header_block(headers));
        let mut b = BytesMut::with_capacity(12 + block.len());
        control_header(
            &mut b,
            TYPE_SYN_REPLY,
            if fin { FLAG_FIN } else { 0 },
            4 + block.len(),
        );
        b.put_u32(stream_id & 0x7fff_ffff);
        b.extend_from_slice(&block);
        b.freeze()
    }

    pub fn headers(&mut self, stream_id: u32, fin: bool, headers: &[(&str, &str)]) -> Bytes {
        let block = self.compress(&write_header_block(headers));
        let mut b = BytesMut::with_capacity(12 + block.len());
        control_header(
            &mut b,
            TYPE_HEADERS,
            if fin { FLAG_FIN } else { 0 },
            4 + block.len(),
        );
        b.put_u32(stream_id & 0x7fff_ffff);
        b.extend_from_slice(&block);
        b.freeze()
    }

    /// A SYN_STREAM (what a client sends; the tests play kubectl with it).
    pub fn syn_stream(&mut self, stream_id: u32, flags: u8, headers: &[(&str, &str)]) -> Bytes {
        let block = self.compress(&write_header_block(headers));
        let mut b = BytesMut::with_capacity(18 + block.len());
        control_header(&mut b, TYPE_SYN_STREAM, flags, 10 + block.len());
        b.put_u32(stream_id & 0x7fff_ffff);
        b.put_u32(0);
        b.put_u8(0);
        b.put_u8(0);
        b.extend_from_slice(&block);
        b.freeze()
    }
}
