#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::exec::status_json;
use super::frame::{self, Decoder, Encoder, Frame, FrameError};
use super::pipe::ResizeParser;
use super::spdy::{Conn, Limits, Reader, Writer};
use super::Kind;
use crate::node::{StreamError, TermSize};

fn adler32(b: &[u8]) -> u32 {
    let (mut a, mut s) = (1u32, 0u32);
    for x in b {
        a = (a + u32::from(*x)) % 65521;
        s = (s + a) % 65521;
    }
    (s << 16) | a
}

#[test]
fn dictionary_is_the_spdy3_one() {
    // Length and Adler-32 (the DICTID a zlib stream names) of the dictionary in the SPDY/3
    // draft, as Go's spdy package and so kubectl use it.
    assert_eq!(frame::DICTIONARY.len(), 1423);
    assert_eq!(adler32(&frame::DICTIONARY), 0xe3c6_a7c2);
}

fn decode_all(dec: &mut Decoder, buf: &mut BytesMut) -> Result<Vec<Frame>, FrameError> {
    let mut out = Vec::new();
    while let Some(f) = dec.decode(buf)? {
        out.push(f);
    }
    Ok(out)
}

#[test]
fn header_frames_round_trip_on_one_zlib_stream() {
    let mut enc = Encoder::new();
    let mut dec = Decoder::new();
    let mut buf = BytesMut::new();
    // Several blocks on the same compression stream, as a connection sends them.
    for id in [1u32, 3, 5, 7] {
        let port = (8000 + id).to_string();
        buf.extend_from_slice(&enc.syn_stream(
            id,
            0,
            &[
                ("streamtype", "data"),
                ("port", &port),
                ("requestid", "0"),
                ("multi", "a"),
                ("multi", "b"),
            ],
        ));
    }
    let frames = decode_all(&mut dec, &mut buf).unwrap();
    assert_eq!(frames.len(), 4);
    for (f, id) in frames.iter().zip([1u32, 3, 5, 7]) {
        let Frame::SynStream {
            stream_id, headers, ..
        } = f
        else {
            panic!("{f:?}")
        };
        assert_eq!(*stream_id, id);
        assert_eq!(frame::header(headers, "streamtype"), Some("data"));
        assert_eq!(
            frame::header(headers, "port"),
            Some((8000 + id).to_string().as_str())
        );
        let multi: Vec<&str> = headers
            .iter()
            .filter(|(k, _)| k == "multi")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(multi, ["a", "b"]);
    }
    // The server's direction: SYN_REPLY, HEADERS.
    let mut enc = Encoder::new();
    let mut dec = Decoder::new();
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&enc.syn_reply(1, false, &[]));
    buf.extend_from_slice(&enc.headers(1, true, &[("x", "y")]));
    assert_eq!(
        decode_all(&mut dec, &mut buf).unwrap(),
        [
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: vec![]
            },
            Frame::Headers {
                stream_id: 1,
                fin: true,
                headers: vec![("x".into(), "y".into())]
            }
        ]
    );
}

#[test]
fn simple_frames_round_trip() {
    let mut buf = BytesMut::new();
    for b in [
        frame::rst_stream(3, frame::RST_CANCEL),
        frame::ping(7),
        frame::goaway(5, frame::GOAWAY_OK),
        frame::settings(&[(0, 7, 65536), (1, 4, 100)]),
        frame::window_update(1, 1000),
        frame::data_frame(9, true, b"payload"),
        frame::data_frame(9, false, b""),
    ] {
        buf.extend_from_slice(&b);
    }
    let mut dec = Decoder::new();
    assert_eq!(
        decode_all(&mut dec, &mut buf).unwrap(),
        [
            Frame::RstStream {
                stream_id: 3,
                status: frame::RST_CANCEL
            },
            Frame::Ping { id: 7 },
            Frame::GoAway {
                last_good_stream_id: 5,
                status: 0
            },
            Frame::Settings { entries: 2 },
            Frame::WindowUpdate {
                stream_id: 1,
                delta: 1000
            },
            Frame::Data {
                stream_id: 9,
                fin: true,
                data: Bytes::from_static(b"payload")
            },
            Frame::Data {
                stream_id: 9,
                fin: false,
                data: Bytes::new()
            },
        ]
    );
    assert!(buf.is_empty());
}

#[test]
fn data_frames_are_handed_out_as_they_arrive() {
    let whole = frame::data_frame(5, true, &[7u8; 1000]);
    let mut dec = Decoder::new();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    let mut fins = 0;
    for piece in whole.chunks(300) {
        buf.extend_from_slice(piece);
        while let Some(f) = dec.decode(&mut buf).unwrap() {
            let Frame::Data {
                stream_id,
                fin,
                data,
            } = f
            else {
                panic!()
            };
            assert_eq!(stream_id, 5);
            assert!(!data.is_empty());
            fins += usize::from(fin);
            got.extend_from_slice(&data);
        }
    }
    assert_eq!(got, vec![7u8; 1000]);
    // FIN only on the last piece.
    assert_eq!(fins, 1);
}

#[test]
fn malformed_frames_are_errors() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // SPDY/2.
        (vec![0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1], "version"),
        // A control frame longer than the limit.
        (vec![0x80, 3, 0, 1, 0, 0xff, 0xff, 0xff], "longer"),
        // RST_STREAM of the wrong length.
        (vec![0x80, 3, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1], "RST_STREAM"),
        // RST_STREAM on stream 0.
        (
            vec![0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1],
            "stream id 0",
        ),
        // DATA on stream 0.
        (vec![0, 0, 0, 0, 0, 0, 0, 1, 9], "stream 0"),
        // SETTINGS whose count does not match its length.
        (vec![0x80, 3, 0, 4, 0, 0, 0, 4, 0, 0, 0, 9], "SETTINGS"),
        // A SYN_STREAM whose header block is not zlib.
        (
            vec![
                0x80, 3, 0, 1, 0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4,
            ],
            "header block",
        ),
        // SYN_STREAM too short for its fixed fields.
        (vec![0x80, 3, 0, 1, 0, 0, 0, 4, 0, 0, 0, 1], "short"),
    ];
    for (bytes, what) in cases {
        let mut dec = Decoder::new();
        let mut buf = BytesMut::from(&bytes[..]);
        let err = decode_all(&mut dec, &mut buf).unwrap_err();
        assert!(
            err.to_string().contains(what),
            "{what}: {err} for {bytes:?}"
        );
    }
}

/// A header block made of one huge value: compresses to little, inflates past the limit.
#[test]
fn header_block_bombs_stop_at_the_limit() {
    let big = "a".repeat(frame::MAX_HEADER_BLOCK * 4);
    let mut enc = Encoder::new();
    let f = enc.syn_stream(1, 0, &[("x", &big)]);
    assert!(f.len() < frame::MAX_CONTROL_LEN, "{}", f.len());
    let mut dec = Decoder::new();
    let mut buf = BytesMut::from(&f[..]);
    let err = decode_all(&mut dec, &mut buf).unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");
    // Too many headers.
    let many: Vec<(String, String)> = (0..frame::MAX_HEADERS + 1)
        .map(|i| (format!("h{i}"), "v".to_string()))
        .collect();
    let pairs: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let block = frame::write_header_block(&pairs);
    assert!(frame::parse_header_block(&block).is_err());
}

/// A small deterministic generator (xorshift64*), so the randomized test is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Valid frame sequences, mutated (flipped bits, cut, spliced, random bytes), fed to the
/// decoder in random pieces: it never panics, and its buffer never holds more than one
/// control frame plus one read.
#[test]
fn randomized_and_mutated_input_never_panics_and_stays_bounded() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut enc = Encoder::new();
    let mut valid = Vec::new();
    for i in 0..40u32 {
        let id = 2 * i + 1;
        valid.push(enc.syn_stream(id, 0, &[("streamtype", "data"), ("port", "80")]));
        valid.push(frame::data_frame(
            id,
            i % 3 == 0,
            &vec![i as u8; (i * 37) as usize],
        ));
        valid.push(frame::ping(id));
        valid.push(frame::rst_stream(id, 5));
        valid.push(frame::settings(&[(0, 4, 100)]));
    }
    let corpus: Vec<u8> = valid.iter().flat_map(|b| b.iter().copied()).collect();
    for round in 0..3000 {
        let mut input = if round % 4 == 0 {
            (0..rng.below(4096)).map(|_| rng.next() as u8).collect()
        } else {
            corpus.clone()
        };
        if round % 4 != 0 {
            for _ in 0..1 + rng.below(8) {
                match rng.below(4) {
                    0 if !input.is_empty() => {
                        let i = rng.below(input.len());
                        input[i] ^= 1 << rng.below(8);
                    }
                    1 if !input.is_empty() => {
                        let i = rng.below(input.len());
                        input[i] = rng.next() as u8;
                    }
                    2 => {
                        let at = rng.below(input.len());
                        let junk: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
                        input.splice(at..at, junk);
                    }
                    _ => {
                        let cut = rng.below(input.len());
                        input.truncate(cut);
                    }
                }
            }
        }
        let mut dec = Decoder::new();
        let mut buf = BytesMut::new();
        let mut pos = 0;
        'feed: while pos < input.len() {
            let n = 1 + rng.below(9000);
            let end = (pos + n).min(input.len());
            buf.extend_from_slice(&input[pos..end]);
            pos = end;
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
            assert!(
                buf.len() <= frame::MAX_CONTROL_LEN + 8 + 9000,
                "buffer grew to {}",
                buf.len()
            );
        }
    }
}

#[test]
fn resize_events_parse_across_pieces() {
    let mut p = ResizeParser::default();
    assert!(p.push(br#"{"Width":80,"#).is_empty());
    assert_eq!(
        p.push(b"\"Height\":24}\n{\"Width\":100,\"Height\":40}\n"),
        [
            TermSize {
                width: 80,
                height: 24
            },
            TermSize {
                width: 100,
                height: 40
            }
        ]
    );
    // Garbage is skipped; a runaway value does not grow the buffer forever.
    assert!(p.push(b"nonsense").is_empty());
    for _ in 0..100 {
        let _ = p.push(&[b'['; 100]);
    }
    assert_eq!(
        p.push(br#"{"Width":1,"Height":2}"#),
        [TermSize {
            width: 1,
            height: 2
        }]
    );
}

#[test]
fn statuses_are_kubelets() {
    let v: serde_json::Value = serde_json::from_slice(&status_json(Kind::Exec, &Ok(0))).unwrap();
    assert_eq!(v["status"], "Success");
    let v: serde_json::Value = serde_json::from_slice(&status_json(Kind::Exec, &Ok(3))).unwrap();
    assert_eq!(v["status"], "Failure");
    assert_eq!(v["reason"], "NonZeroExitCode");
    assert_eq!(v["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(v["details"]["causes"][0]["message"], "3");
    let e = StreamError {
        code: 500,
        message: "boom".into(),
    };
    let v: serde_json::Value = serde_json::from_slice(&status_json(Kind::Attach, &Err(e))).unwrap();
    assert_eq!(
        v["message"],
        "Internal error occurred: error attaching to container: boom"
    );
    assert_eq!(v["code"], 500);
}

// ---- the connection engine, driven by a hand-made client over an in-memory pipe ----

struct Client {
    io: tokio::io::DuplexStream,
    enc: Encoder,
    dec: Decoder,
    buf: BytesMut,
}

impl Client {
    async fn send(&mut self, b: &[u8]) {
        self.io.write_all(b).await.unwrap();
    }
    async fn open(&mut self, id: u32, h: &[(&str, &str)]) {
        let f = self.enc.syn_stream(id, 0, h);
        self.send(&f).await;
    }
    /// The next frame from the server; None at EOF.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.dec.decode(&mut self.buf).unwrap() {
                return Some(f);
            }
            let n = tokio::time::timeout(Duration::from_secs(5), self.io.read_buf(&mut self.buf))
                .await
                .expect("server silent")
                .unwrap();
            if n == 0 {
                return None;
            }
        }
    }
}

fn start(max_streams: usize, idle: Duration) -> (Conn, Client) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let (r, w) = tokio::io::split(a);
    let accept: super::spdy::Accept = Box::new(|h| match frame::header(h, "streamtype") {
        Some("ok") => Ok(()),
        _ => Err(frame::RST_PROTOCOL_ERROR),
    });
    let conn = Conn::start(
        Reader::Raw(Box::new(r)),
        Writer::Raw(Box::new(w)),
        Limits {
            max_streams,
            idle_timeout: idle,
        },
        accept,
    );
    (
        conn,
        Client {
            io: b,
            enc: Encoder::new(),
            dec: Decoder::new(),
            buf: BytesMut::new(),
        },
    )
}

#[tokio::test]
async fn conn_replies_echoes_pings_and_carries_data_both_ways() {
    let (mut conn, mut c) = start(4, Duration::from_secs(60));
    c.open(1, &[("streamtype", "ok")]).await;
    assert!(matches!(
        c.next().await,
        Some(Frame::SynReply { stream_id: 1, .. })
    ));
    let mut s = conn.streams.recv().await.unwrap();
    assert_eq!(s.header("streamtype"), Some("ok"));
    c.send(&frame::data_frame(1, false, b"to server")).await;
    assert_eq!(&s.inbound.recv().await.unwrap()[..], b"to server");
    c.send(&frame::data_frame(1, true, b"")).await;
    assert!(
        s.inbound.recv().await.is_none(),
        "FIN ends the inbound side"
    );
    assert!(s.out.data(Bytes::from_static(b"to client")).await);
    s.out.fin().await;
    assert_eq!(
        c.next().await,
        Some(Frame::Data {
            stream_id: 1,
            fin: false,
            data: Bytes::from_static(b"to client")
        })
    );
    assert_eq!(
        c.next().await,
        Some(Frame::Data {
            stream_id: 1,
            fin: true,
            data: Bytes::new()
        })
    );
    c.send(&frame::ping(11)).await;
    assert_eq!(c.next().await, Some(Frame::Ping { id: 11 }));
    // WINDOW_UPDATE and SETTINGS are ignored, not errors.
    c.send(&frame::window_update(1, 5)).await;
    c.send(&frame::settings(&[(0, 7, 1)])).await;
    c.send(&frame::ping(13)).await;
    assert_eq!(c.next().await, Some(Frame::Ping { id: 13 }));
}

#[tokio::test]
async fn conn_refuses_bad_ids_unknown_streams_and_too_many() {
    let (mut conn, mut c) = start(2, Duration::from_secs(60));
    // Rejected by the session's check.
    c.open(1, &[("streamtype", "nope")]).await;
    assert_eq!(
        c.next().await,
        Some(Frame::RstStream {
            stream_id: 1,
            status: frame::RST_PROTOCOL_ERROR
        })
    );
    // Even (server) ids and ids going backwards.
    c.open(4, &[("streamtype", "ok")]).await;
    assert!(matches!(
        c.next().await,
        Some(Frame::RstStream { stream_id: 4, .. })
    ));
    c.open(3, &[("streamtype", "ok")]).await;
    assert!(matches!(
        c.next().await,
        Some(Frame::SynReply { stream_id: 3, .. })
    ));
    c.open(3, &[("streamtype", "ok")]).await;
    assert!(matches!(
        c.next().await,
        Some(Frame::RstStream { stream_id: 3, .. })
    ));
    c.open(5, &[("streamtype", "ok")]).await;
    assert!(matches!(
        c.next().await,
        Some(Frame::SynReply { stream_id: 5, .. })
    ));
    // Two open: the third is refused.
    c.open(7, &[("streamtype", "ok")]).await;
    assert_eq!(
        c.next().await,
        Some(Frame::RstStream {
            stream_id: 7,
            status: frame::RST_REFUSED_STREAM
        })
    );
    // Closing one frees its slot.
    let s3 = conn.streams.recv().await.unwrap();
    drop(s3);
    c.open(9, &[("streamtype", "ok")]).await;
    assert!(matches!(
        c.next().await,
        Some(Frame::SynReply { stream_id: 9, .. })
    ));
}

#[tokio::test]
async fn conn_ends_on_garbage_with_goaway_and_on_idle() {
    let (conn, mut c) = start(2, Duration::from_secs(60));
    c.send(&[0x80, 9, 0, 1, 0, 0, 0, 0]).await;
    assert!(matches!(
        c.next().await,
        Some(Frame::GoAway {
            status: frame::GOAWAY_PROTOCOL_ERROR,
            ..
        })
    ));
    assert_eq!(c.next().await, None, "the server closed");
    tokio::time::timeout(Duration::from_secs(5), conn.closed.cancelled())
        .await
        .unwrap();

    // Idle: nothing in either direction ends the connection.
    let (conn, mut c) = start(2, Duration::from_millis(300));
    tokio::time::timeout(Duration::from_secs(5), conn.closed.cancelled())
        .await
        .unwrap();
    drop(conn);
    assert_eq!(c.next().await, None);
}

#[tokio::test]
async fn conn_reset_by_client_cancels_the_stream_and_disconnect_ends_all() {
    let (mut conn, mut c) = start(4, Duration::from_secs(60));
    c.open(1, &[("streamtype", "ok")]).await;
    c.open(3, &[("streamtype", "ok")]).await;
    let s1 = conn.streams.recv().await.unwrap();
    let s3 = conn.streams.recv().await.unwrap();
    c.send(&frame::rst_stream(1, frame::RST_CANCEL)).await;
    tokio::time::timeout(Duration::from_secs(5), s1.reset.cancelled())
        .await
        .unwrap();
    assert!(!s3.reset.is_cancelled());
    drop(c);
    tokio::time::timeout(Duration::from_secs(5), s3.reset.cancelled())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), conn.closed.cancelled())
        .await
        .unwrap();
}
