//! A directory of a test's own for the files a worker reads and writes
//! (its config, a file source, a dead-letter file), removed when the test
//! is done so repeated runs do not fill the temp dir.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::TestkitError;

/// Numbers directories within this process, so parallel tests never share.
static NEXT_DIR: AtomicU32 = AtomicU32::new(1);

/// A fresh directory under the system temp dir, removed (with everything
/// in it) on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `<temp>/gluefleet-<name>-<pid>-<n>`.
    pub fn new(name: &str) -> Result<Self, TestkitError> {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("gluefleet-{name}-{}-{n}", std::process::id()));
        // A leftover of an earlier process with the same pid goes first.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(|source| TestkitError::Io {
            what: format!("creating {}", path.display()),
            source,
        })?;
        Ok(Self(path))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `contents` to file `name` in the directory (a worker's
    /// config, an events file) and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> Result<PathBuf, TestkitError> {
        let path = self.0.join(name);
        std::fs::write(&path, contents).map_err(|source| TestkitError::Io {
            what: format!("writing {}", path.display()),
            source,
        })?;
        Ok(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
