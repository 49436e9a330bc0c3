//! Content hashes, computed while the bytes arrive.
//!
//! The Hub names every blob by its hash: sha256 for LFS files, the git blob
//! sha1 (`sha1("blob <size>\0" + content)`) for the others. The hasher
//! follows the write frontier of a download: bytes that arrive in order are
//! hashed straight from the network buffer; bytes a parallel connection
//! wrote further ahead are read back from the page cache, moments after
//! they were written, when the frontier reaches them. When the last byte is
//! written the digest is ready; there is no pass over the file afterwards.

use std::fs::File;
use std::ops::Range;
use std::path::PathBuf;

use sha1::Sha1;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::ranges::RangeSet;

/// What a finished file must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// sha256 of the content (LFS files; the etag is this hash).
    Sha256([u8; 32]),
    /// git blob sha1 (other files; the etag is this hash).
    GitSha1([u8; 20]),
    /// The etag is not a content hash (a foreign mirror): size only.
    SizeOnly,
}

impl Expected {
    /// Reads the expectation off an etag: 64 hex digits are a sha256, 40 a
    /// git sha1, anything else cannot be checked beyond the size.
    ///
    /// ```
    /// use hf_hub::verify::Expected;
    /// let e = Expected::from_etag("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53");
    /// assert!(matches!(e, Expected::Sha256(_)));
    /// assert_eq!(Expected::from_etag("abc"), Expected::SizeOnly);
    /// ```
    #[must_use]
    pub fn from_etag(etag: &str) -> Self {
        let mut sha256 = [0u8; 32];
        let mut sha1 = [0u8; 20];
        if hex::decode_to_slice(etag, &mut sha256).is_ok() {
            Expected::Sha256(sha256)
        } else if hex::decode_to_slice(etag, &mut sha1).is_ok() {
            Expected::GitSha1(sha1)
        } else {
            Expected::SizeOnly
        }
    }

    /// "sha256", "git sha1" or "size".
    #[must_use]
    pub fn algorithm(&self) -> &'static str {
        match self {
            Expected::Sha256(_) => "sha256",
            Expected::GitSha1(_) => "git sha1",
            Expected::SizeOnly => "size",
        }
    }

    /// The expected digest in hex ("" for size-only).
    #[must_use]
    pub fn hex(&self) -> String {
        match self {
            Expected::Sha256(d) => hex::encode(d),
            Expected::GitSha1(d) => hex::encode(d),
            Expected::SizeOnly => String::new(),
        }
    }
}

/// A running content hash of one of the two kinds.
#[derive(Clone)]
pub enum Hasher {
    /// sha256.
    Sha256(Box<Sha256>),
    /// git blob sha1, header already fed.
    GitSha1(Box<Sha1>),
    /// Nothing to hash.
    None,
}

impl Hasher {
    /// A hasher for a file of `size` bytes expected to match `expected`.
    #[must_use]
    pub fn new(expected: &Expected, size: u64) -> Self {
        match expected {
            Expected::Sha256(_) => Hasher::Sha256(Box::default()),
            Expected::GitSha1(_) => {
                let mut h = Sha1::default();
                h.update(format!("blob {size}\0").as_bytes());
                Hasher::GitSha1(Box::new(h))
            }
            Expected::SizeOnly => Hasher::None,
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::GitSha1(h) => h.update(bytes),
            Hasher::None => {}
        }
    }

    /// The digest in hex ("" when nothing was hashed).
    #[must_use]
    pub fn finish_hex(self) -> String {
        match self {
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::GitSha1(h) => hex::encode(h.finalize()),
            Hasher::None => String::new(),
        }
    }
}

/// Hashes a file's bytes in order while they are written out of order.
pub(crate) struct OrderedHasher {
    hasher: Hasher,
    hashed: u64,
    pending: RangeSet,
    reader: File,
    path: PathBuf,
    buf: Vec<u8>,
    stop: CancellationToken,
}

/// The error a read-back returns when `stop` fired between two blocks.
pub(crate) fn stopped() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::Interrupted, "stopped")
}

impl OrderedHasher {
    /// Starts at byte 0. `already` are ranges already on disk (a resumed
    /// partial file); they are read back as the frontier reaches them,
    /// checking `stop` between blocks (a resumed prefix can be gigabytes).
    pub(crate) fn new(
        expected: &Expected,
        size: u64,
        (reader, path): (File, PathBuf),
        already: &RangeSet,
        stop: CancellationToken,
    ) -> Self {
        OrderedHasher {
            hasher: Hasher::new(expected, size),
            hashed: 0,
            pending: already.clone(),
            reader,
            path,
            buf: Vec::new(),
            stop,
        }
    }

    /// Bytes at `offset` were written; `data` is them, when at hand.
    pub(crate) fn written(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let len = data.len() as u64;
        if offset == self.hashed {
            self.hasher.update(data);
            self.hashed += len;
        } else {
            self.pending.insert(offset..offset + len);
        }
        self.drain()
    }

    /// Bytes at `range` were written (already on disk; not at hand).
    pub(crate) fn written_range(&mut self, range: Range<u64>) -> std::io::Result<()> {
        self.pending.insert(range);
        self.drain()
    }

    fn drain(&mut self) -> std::io::Result<()> {
        for range in self.pending.take_starting_at_or_before(self.hashed) {
            if range.end > self.hashed {
                self.read_back(self.hashed..range.end)?;
            }
        }
        Ok(())
    }

    fn read_back(&mut self, range: Range<u64>) -> std::io::Result<()> {
        const BLOCK: usize = 1 << 20;
        if self.buf.len() < BLOCK {
            self.buf.resize(BLOCK, 0);
        }
        let mut pos = range.start;
        while pos < range.end {
            if self.stop.is_cancelled() {
                // What was hashed so far stays consistent: the frontier.
                self.hashed = pos;
                return Err(stopped());
            }
            let want = usize::try_from(range.end - pos).unwrap_or(BLOCK).min(BLOCK);
            let block = &mut self.buf[..want];
            read_exact_at(&self.reader, block, pos).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("reading back {}: {e}", self.path.display()),
                )
            })?;
            self.hasher.update(block);
            pos += want as u64;
        }
        self.hashed = range.end;
        Ok(())
    }

    /// Bytes hashed so far (the frontier).
    pub(crate) fn hashed(&self) -> u64 {
        self.hashed
    }

    /// The frontier and the digest in hex.
    pub(crate) fn finish(self) -> (u64, String) {
        (self.hashed, self.hasher.finish_hex())
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = file.seek_read(buf, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Hashes a whole file that is already on disk (used to check blobs that
/// another tool put in the cache, and by tests).
pub fn hash_file(path: &std::path::Path, expected: &Expected) -> std::io::Result<(u64, String)> {
    hash_file_until(path, expected, &CancellationToken::new(), |_| {})
}

/// [`hash_file`] that checks `stop` between blocks (an error of kind
/// `Interrupted` when it fired) and reports each block's length.
pub fn hash_file_until(
    path: &std::path::Path,
    expected: &Expected,
    stop: &CancellationToken,
    mut on_block: impl FnMut(u64),
) -> std::io::Result<(u64, String)> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    let mut hasher = Hasher::new(expected, size);
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        if stop.is_cancelled() {
            return Err(stopped());
        }
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
        on_block(n as u64);
    }
    Ok((total, hasher.finish_hex()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn git_blob_sha1_matches_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        let expected = Expected::from_etag("ce013625030ba8dba906f756967f9e9ca394464a");
        let mut h = Hasher::new(&expected, 6);
        h.update(b"hello\n");
        assert_eq!(h.finish_hex(), expected.hex());
    }

    #[test]
    fn out_of_order_writes_hash_like_a_sequential_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&data)
            .unwrap();
        let expected = Expected::Sha256([0; 32]);
        let mut already = RangeSet::default();
        already.insert(10_000..20_000);
        let mut h = OrderedHasher::new(
            &expected,
            data.len() as u64,
            (File::open(&path).unwrap(), path.clone()),
            &already,
            CancellationToken::new(),
        );
        // Arrivals: a later chunk first, then the start, then the gaps.
        h.written(50_000, &data[50_000..100_000]).unwrap();
        assert_eq!(h.hashed(), 0);
        h.written(0, &data[..10_000]).unwrap();
        assert_eq!(h.hashed(), 20_000, "the resumed range is read back");
        h.written_range(20_000..50_000).unwrap();
        let (hashed, digest) = h.finish();
        assert_eq!(hashed, 100_000);
        assert_eq!(digest, hex::encode(Sha256::digest(&data)));
    }

    #[test]
    fn a_stop_ends_the_read_back_of_resumed_bytes_between_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 8 << 20]).unwrap();
        let mut already = RangeSet::default();
        already.insert(0..8 << 20);
        let stop = CancellationToken::new();
        stop.cancel();
        let mut h = OrderedHasher::new(
            &Expected::Sha256([0; 32]),
            8 << 20,
            (File::open(&path).unwrap(), path.clone()),
            &already,
            stop,
        );
        let err = h.written_range(0..0).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::Interrupted);
        assert_eq!(h.hashed(), 0, "read back past the stop");
    }
}
