//! Saving and restoring the sandbox's objects to a JSON file (`--state FILE`).
//! Owns the file format; it must not keep watch history or fault settings.

use std::path::Path;

use super::SandboxError;
use super::store::{Snapshot, Store};

/// Write every object to `path` (atomically: a temporary file, then a rename).
pub fn save(store: &Store, path: &Path) -> Result<(), SandboxError> {
    let snap = store.snapshot_all();
    let data = serde_json::to_vec_pretty(&snap).map_err(|e| SandboxError::State {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let tmp = path.with_extension("tmp");
    let io = |e: std::io::Error| SandboxError::State {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    std::fs::write(&tmp, data).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

/// Replace the store's objects with those saved in `path`; a missing file leaves it as is.
/// Returns whether a file was read.
pub fn load(store: &Store, path: &Path) -> Result<bool, SandboxError> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(SandboxError::State {
                path: path.to_path_buf(),
                message: e.to_string(),
            });
        }
    };
    let snap: Snapshot = serde_json::from_slice(&data).map_err(|e| SandboxError::State {
        path: path.to_path_buf(),
        message: format!("not a sandbox state file: {e}"),
    })?;
    store.restore(snap);
    Ok(true)
}
