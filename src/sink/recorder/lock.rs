//! Who is recording into a folder: every process that writes recordings holds a shared
//! `flock(2)` on `<dir>/.recorder.lock` for as long as it records; the repair of
//! half-written files needs the lock exclusively, so it only runs when no other process
//! is writing there (a `verify` next to a running daemon must not "repair" the files the
//! daemon has open). flock locks go away with the process, so a kill -9 frees them.
//! By hand over libc: std's `File::lock` is newer than the crate's minimum Rust (1.85).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock file's name inside the recordings folder (never listed as a recording).
pub const LOCK_FILE: &str = ".recorder.lock";

/// An open lock file and the lock held on it (released on drop, or when the process ends).
#[derive(Debug)]
pub struct DirLock {
    file: File,
    path: PathBuf,
    exclusive: bool,
}

fn flock(file: &File, op: libc::c_int) -> io::Result<bool> {
    loop {
        // SAFETY: flock on a descriptor we own; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(e),
        }
    }
}

impl DirLock {
    fn open_file(dir: &Path) -> io::Result<(File, PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
        Ok((file, path))
    }

    /// The exclusive lock if nobody else holds the folder, else `None` (without waiting).
    pub fn try_exclusive(dir: &Path) -> io::Result<Option<DirLock>> {
        let (file, path) = DirLock::open_file(dir)?;
        Ok(flock(&file, libc::LOCK_EX | libc::LOCK_NB)?.then_some(DirLock { file, path, exclusive: true }))
    }

    /// A shared lock (waits while another process holds it exclusively: a repair).
    pub fn shared(dir: &Path) -> io::Result<DirLock> {
        let (file, path) = DirLock::open_file(dir)?;
        flock(&file, libc::LOCK_SH)?;
        Ok(DirLock { file, path, exclusive: false })
    }

    /// Turn an exclusive lock into a shared one (other recorders may then start).
    pub fn downgrade(mut self) -> io::Result<DirLock> {
        flock(&self.file, libc::LOCK_SH)?;
        self.exclusive = false;
        Ok(self)
    }

    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_excludes_exclusive_and_drop_releases() {
        let dir = tempfile::tempdir().unwrap();
        let ex = DirLock::try_exclusive(dir.path()).unwrap().expect("free folder");
        assert!(ex.is_exclusive());
        // flock locks belong to the open file: a second open in this process conflicts
        // like another process would.
        assert!(DirLock::try_exclusive(dir.path()).unwrap().is_none());
        let sh = ex.downgrade().unwrap();
        assert!(!sh.is_exclusive());
        let sh2 = DirLock::shared(dir.path()).unwrap();
        assert!(DirLock::try_exclusive(dir.path()).unwrap().is_none(), "two readers hold it");
        drop(sh);
        assert!(DirLock::try_exclusive(dir.path()).unwrap().is_none(), "one reader still holds it");
        drop(sh2);
        assert!(DirLock::try_exclusive(dir.path()).unwrap().is_some());
        assert!(dir.path().join(LOCK_FILE).exists());
    }
}
