//! `sha256:<hex>` digests: parsing (the hex becomes a file name, so it is checked strictly)
//! and hashing readers/writers.

use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

/// The one algorithm the store accepts (what registries and every tool use). A descriptor
/// with `sha512:` is refused with a clear error rather than half-supported.
pub const SHA256_PREFIX: &str = "sha256:";

/// The 64 lowercase hex digits of `digest` (`sha256:<hex>`), or `None` if it is not one.
pub fn sha256_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix(SHA256_PREFIX)?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

/// Lowercase hex of bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// `sha256:<hex>` of `data`.
pub fn sha256_of(data: &[u8]) -> String {
    format!("{SHA256_PREFIX}{}", to_hex(&Sha256::digest(data)))
}

/// A running sha256 that renders as `sha256:<hex>`.
#[derive(Default, Clone)]
pub struct Hasher(Sha256);

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hasher")
    }
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    pub fn finish(self) -> String {
        format!("{SHA256_PREFIX}{}", to_hex(&self.0.finalize()))
    }
}

/// A reader that hashes and counts what passes through it and fails once more than `limit`
/// bytes came (a decompression bomb stops there, not at the disk's end).
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
    limit: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R, limit: u64) -> Self {
        Self {
            inner,
            hasher: Hasher::default(),
            count: 0,
            limit,
        }
    }
    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }
    /// Reads to the end (the tar parser stops at its end marker; the digest covers every
    /// byte) and returns the digest and the byte count.
    pub fn drain(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.hasher.finish(), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                LimitExceeded(self.limit),
            ));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The error inside the `io::Error` a [`HashingReader`] returns past its limit.
#[derive(Debug, thiserror::Error)]
#[error("more than {0} bytes")]
pub struct LimitExceeded(pub u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_is_strict() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert_eq!(sha256_hex(&good), Some("a".repeat(64).as_str()));
        for bad in [
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha512:{}", "a".repeat(64)),
            format!("sha256:{}/..", "a".repeat(62)),
            "sha256:".to_string(),
        ] {
            assert_eq!(sha256_hex(&bad), None, "{bad}");
        }
        assert_eq!(
            sha256_of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn hashing_reader_stops_past_its_limit() {
        let data = vec![7u8; 100];
        let r = HashingReader::new(&data[..], 99);
        assert!(r.drain().is_err());
        let r = HashingReader::new(&data[..], 100);
        assert_eq!(r.drain().unwrap(), (sha256_of(&data), 100));
    }
}
