//! The on-disk encodings of the store's tables. Everything is plain bytes and little-endian
//! integers (redb 5 changed the encodings of some composite types, so the store keeps to
//! `&[u8]` and `u64`, whose encodings are stable):
//!
//! * key:    `u32 len | resource | u32 len | namespace | name`
//! * object: `u64 create_rev | u64 mod_rev | json`
//! * log:    `u8 type | u64 commit time (ms since the epoch) | u32 key len | key | json`

use super::{EventType, Key, Rev};

/// A key part longer than this is refused (Kubernetes names are at most 253 bytes; resources
/// and namespaces are shorter): it keeps every length well inside a `u32`.
pub(super) const MAX_KEY_PART: usize = 1024;

/// Whether every part of `key` fits [`MAX_KEY_PART`].
pub(super) fn key_fits(key: &Key) -> bool {
    [&key.resource, &key.namespace, &key.name]
        .iter()
        .all(|p| p.len() <= MAX_KEY_PART)
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    // Callers check `key_fits` first; a longer part would be a bug, and saturating keeps the
    // encoding decodable (it then fails to decode rather than misparse).
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
}

pub(super) fn encode_key(key: &Key) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.resource.len() + key.namespace.len() + key.name.len());
    for part in [&key.resource, &key.namespace] {
        put_len(&mut out, part.len());
        out.extend_from_slice(part.as_bytes());
    }
    out.extend_from_slice(key.name.as_bytes());
    out
}

/// A reader over a byte slice; every method fails (None) instead of reading past the end.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self, n: usize) -> Option<String> {
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn rest(self) -> &'a [u8] {
        self.0
    }
}

pub(super) fn decode_key(bytes: &[u8]) -> Option<Key> {
    let mut c = Cursor(bytes);
    let n = c.u32()? as usize;
    let resource = c.str(n)?;
    let n = c.u32()? as usize;
    let namespace = c.str(n)?;
    let name = String::from_utf8(c.rest().to_vec()).ok()?;
    Some(Key {
        resource,
        namespace,
        name,
    })
}

pub(super) fn encode_object(create_rev: Rev, mod_rev: Rev, json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + json.len());
    out.extend_from_slice(&create_rev.to_le_bytes());
    out.extend_from_slice(&mod_rev.to_le_bytes());
    out.extend_from_slice(json);
    out
}

/// `(create_rev, mod_rev, json)`.
pub(super) fn decode_object(bytes: &[u8]) -> Option<(Rev, Rev, &[u8])> {
    let mut c = Cursor(bytes);
    let create = c.u64()?;
    let modified = c.u64()?;
    Some((create, modified, c.rest()))
}

fn type_byte(kind: EventType) -> u8 {
    match kind {
        EventType::Added => 1,
        EventType::Modified => 2,
        EventType::Deleted => 3,
    }
}

fn byte_type(b: u8) -> Option<EventType> {
    match b {
        1 => Some(EventType::Added),
        2 => Some(EventType::Modified),
        3 => Some(EventType::Deleted),
        _ => None,
    }
}

pub(super) fn encode_log(kind: EventType, at_ms: u64, key: &[u8], json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(13 + key.len() + json.len());
    out.push(type_byte(kind));
    out.extend_from_slice(&at_ms.to_le_bytes());
    put_len(&mut out, key.len());
    out.extend_from_slice(key);
    out.extend_from_slice(json);
    out
}

/// A decoded log entry.
pub(super) struct LogEntry<'a> {
    pub kind: EventType,
    pub at_ms: u64,
    pub key: Key,
    pub json: &'a [u8],
}

pub(super) fn decode_log(bytes: &[u8]) -> Option<LogEntry<'_>> {
    let mut c = Cursor(bytes);
    let kind = byte_type(c.u8()?)?;
    let at_ms = c.u64()?;
    let n = c.u32()? as usize;
    let key = decode_key(c.take(n)?)?;
    Some(LogEntry {
        kind,
        at_ms,
        key,
        json: c.rest(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

    use super::*;

    #[test]
    fn round_trips() {
        let key = Key::new("batch/jobs", "ns-1", "a/b\0c");
        let k = encode_key(&key);
        assert_eq!(decode_key(&k), Some(key.clone()));
        let cluster = Key::new("namespaces", "", "default");
        assert_eq!(decode_key(&encode_key(&cluster)), Some(cluster));

        let o = encode_object(3, 9, b"{\"x\":1}");
        assert_eq!(decode_object(&o), Some((3, 9, &b"{\"x\":1}"[..])));

        let l = encode_log(EventType::Deleted, 1234, &k, b"{}");
        let e = decode_log(&l).unwrap();
        assert_eq!(e.kind, EventType::Deleted);
        assert_eq!(e.at_ms, 1234);
        assert_eq!(e.key, key);
        assert_eq!(e.json, b"{}");
    }

    #[test]
    fn truncated_or_bad_bytes_do_not_decode() {
        let k = encode_key(&Key::new("pods", "default", "x"));
        for cut in 0..8 {
            assert_eq!(decode_key(&k[..cut]), None, "cut {cut}");
        }
        assert_eq!(decode_key(&[255, 255, 255, 255, b'a']), None);
        assert!(decode_object(&[0; 15]).is_none());
        let l = encode_log(EventType::Added, 1, &k, b"{}");
        assert!(decode_log(&l[..12]).is_none());
        let mut bad = l.clone();
        bad[0] = 9;
        assert!(decode_log(&bad).is_none());
    }
}
