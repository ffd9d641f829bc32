//! sha256 digests: validation, and readers/writers that hash what passes through them.

use std::io::{self, Read, Write};

use super::error::ImageError;

/// Checks `digest` is `sha256:<64 lowercase hex>` and returns the hex part.
pub fn validate_digest(digest: &str) -> Result<&str, ImageError> {
    let invalid = || ImageError::InvalidDigest {
        digest: digest.to_string(),
    };
    let hex = digest.strip_prefix("sha256:").ok_or_else(invalid)?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(invalid());
    }
    Ok(hex)
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format_digest(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// An incremental sha256. ring's assembly keeps hashing fast in debug builds too
/// (sha2 compiled without optimisation hashes at a few MB/s).
pub struct Sha256(ring::digest::Context);

impl Default for Sha256 {
    fn default() -> Self {
        Sha256(ring::digest::Context::new(&ring::digest::SHA256))
    }
}

impl Sha256 {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// `sha256:<hex>`.
    pub fn finish(self) -> String {
        format_digest(self.0.finish().as_ref())
    }
}

fn format_digest(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Fails with [`ImageError::DigestMismatch`] unless `actual == expected`.
pub fn verify(what: impl Into<String>, expected: &str, actual: &str) -> Result<(), ImageError> {
    if expected == actual {
        Ok(())
    } else {
        Err(ImageError::DigestMismatch {
            what: what.into(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        })
    }
}

/// A reader that hashes and counts every byte read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::default(),
            count: 0,
        }
    }

    /// Reads the rest of the stream (e.g. tar padding after the end marker) so the digest covers it.
    pub fn drain(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(|_| ())
    }

    /// `sha256:<hex>` and byte count of everything read so far.
    pub fn finish(self) -> (String, u64) {
        (self.hasher.finish(), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes and counts every byte written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::default(),
            count: 0,
        }
    }

    /// The inner writer, `sha256:<hex>` and byte count of everything written.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, self.hasher.finish(), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_input_is_the_well_known_one() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut r = HashingReader::new(&b"abc"[..]);
        r.drain().unwrap();
        assert_eq!(r.finish(), (sha256_digest(b"abc"), 3));
    }

    #[test]
    fn validate_refuses_other_algorithms_and_bad_hex() {
        assert!(validate_digest(&sha256_digest(b"x")).is_ok());
        assert!(validate_digest("sha512:00").is_err());
        assert!(validate_digest(&format!("sha256:{}", "G".repeat(64))).is_err());
        assert!(validate_digest(&format!("sha256:{}/..", "a".repeat(62))).is_err());
    }
}
