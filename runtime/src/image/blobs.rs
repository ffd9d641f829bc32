//! The content store: `blobs/sha256/<hex>`, written once through a temp file that is renamed
//! into place only after its digest checked out, so a blob that exists is complete and correct
//! and two writers of one blob cannot corrupt it (the second rename replaces identical bytes).

use std::fs;
use std::io::{self, Read};
use std::path::PathBuf;

use super::digest::{validate_digest, verify, HashingWriter};
use super::error::ImageError;

#[derive(Debug, Clone)]
pub struct Blobs {
    dir: PathBuf,
    tmp: PathBuf,
}

impl Blobs {
    /// `dir` holds the blobs (`<root>/blobs/sha256`), `tmp` the partial writes (same filesystem).
    pub fn open(dir: PathBuf, tmp: PathBuf) -> Result<Blobs, ImageError> {
        fs::create_dir_all(&dir).map_err(ImageError::io(&dir))?;
        fs::create_dir_all(&tmp).map_err(ImageError::io(&tmp))?;
        Ok(Blobs { dir, tmp })
    }

    pub fn path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.dir.join(validate_digest(digest)?))
    }

    pub fn contains(&self, digest: &str) -> bool {
        self.path(digest).is_ok_and(|p| p.is_file())
    }

    pub fn read(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let path = self.path(digest)?;
        fs::read(&path).map_err(ImageError::io(path))
    }

    /// A temp file for a blob being written; hand it back to [`Blobs::commit`].
    pub fn create_temp(&self) -> Result<tempfile::NamedTempFile, ImageError> {
        tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&self.tmp)
            .map_err(ImageError::io(&self.tmp))
    }

    /// Copies `reader` into the store; when `expected` is given the content must hash to it.
    /// Returns the digest and size.
    pub fn ingest(
        &self,
        reader: impl Read,
        expected: Option<&str>,
        what: &str,
    ) -> Result<(String, u64), ImageError> {
        if let Some(e) = expected {
            validate_digest(e)?;
        }
        let tmp = self.create_temp()?;
        let mut w = HashingWriter::new(io::BufWriter::new(tmp));
        let mut reader = reader;
        io::copy(&mut reader, &mut w).map_err(ImageError::io(&self.tmp))?;
        let (buf, digest, size) = w.finish();
        let tmp = buf
            .into_inner()
            .map_err(|e| ImageError::io(&self.tmp)(e.into_error()))?;
        if let Some(e) = expected {
            verify(what, e, &digest)?;
        }
        self.commit(tmp, &digest)?;
        Ok((digest, size))
    }

    /// Stores `data`, whose digest the caller computed or verified.
    pub fn put(
        &self,
        data: &[u8],
        expected: Option<&str>,
        what: &str,
    ) -> Result<String, ImageError> {
        if let Some(e) = expected.filter(|e| self.contains(e)) {
            return verify(what, e, &super::digest::sha256_digest(data)).map(|_| e.to_string());
        }
        self.ingest(data, expected, what).map(|(d, _)| d)
    }

    /// fsyncs a verified temp file and renames it to its digest's path.
    pub fn commit(&self, tmp: tempfile::NamedTempFile, digest: &str) -> Result<(), ImageError> {
        let dest = self.path(digest)?;
        tmp.as_file()
            .sync_all()
            .map_err(ImageError::io(tmp.path()))?;
        tmp.persist(&dest)
            .map_err(|e| ImageError::io(&dest)(e.error))?;
        Ok(())
    }

    /// Digests of every blob in the store.
    pub fn list(&self) -> Result<Vec<String>, ImageError> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir).map_err(ImageError::io(&self.dir))? {
            let e = e.map_err(ImageError::io(&self.dir))?;
            out.push(format!("sha256:{}", e.file_name().to_string_lossy()));
        }
        Ok(out)
    }

    pub fn remove(&self, digest: &str) -> Result<(), ImageError> {
        let path = self.path(digest)?;
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ImageError::io(path)(e)),
            _ => Ok(()),
        }
    }
}
