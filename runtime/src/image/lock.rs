//! Advisory file locks (flock(2)) that order writers across threads and processes:
//! the runtime and `minik8s images import` may work on one store at once.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::error::ImageError;

/// Held until dropped (closing the file releases the lock).
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Many shared holders at once: ingesting content (blobs exist before any image names them).
    pub fn shared(path: &Path) -> Result<FileLock, ImageError> {
        Self::lock(path, libc::LOCK_SH)
    }

    /// One holder: metadata read-modify-write, garbage collection.
    pub fn exclusive(path: &Path) -> Result<FileLock, ImageError> {
        Self::lock(path, libc::LOCK_EX)
    }

    /// The exclusive lock if nobody holds the lock now.
    pub fn try_exclusive(path: &Path) -> Result<Option<FileLock>, ImageError> {
        match Self::lock(path, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(l) => Ok(Some(l)),
            Err(ImageError::Io { source, .. }) if source.kind() == io::ErrorKind::WouldBlock => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn lock(path: &Path, op: libc::c_int) -> Result<FileLock, ImageError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(ImageError::io(path))?;
        loop {
            // SAFETY: flock on a descriptor we own; each open() gets its own lock, so two
            // threads of one process exclude each other too.
            if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
                return Ok(FileLock { _file: file });
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(ImageError::io(path)(err));
            }
        }
    }
}
