//! The SPDY/3.1 frame decoder on arbitrary bytes, fed in pieces whose sizes the input picks:
//! it must never panic, and its buffer never holds more than one control frame plus a piece.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/http/stream/frame.rs"]
mod frame;

use frame::{Decoder, MAX_CONTROL_LEN};

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let step = 1 + usize::from(step) * 37;
    let mut dec = Decoder::new();
    let mut buf = BytesMut::new();
    for piece in rest.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(buf.len() <= MAX_CONTROL_LEN + 8 + step);
    }
});
