//! The bytes of a TorchScript file, read once when a model is loaded.
//!
//! A [`TorchScriptModel`](crate::TorchScriptModel) makes further copies of itself on demand: the
//! frozen inference copy (perturbation methods), copies with rewritten backward rules (DeepLIFT,
//! guided backprop, LRP) and copies with a layer exposed (layer methods). All of them, and any
//! copy a caller makes with [`ModelFile::load_module`], come from the bytes read by
//! [`ModelFile::read`], never from the file again: replacing the file afterwards (a training loop
//! saving its next checkpoint under the same name) or deleting it changes none of them, so every
//! method explains the model that was loaded.

use crate::error::{AttribError, Result};
use crate::model::first_line;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::{CModule, Device};

/// A TorchScript file's bytes, with the path they were read from (for messages) and the file's
/// identity at that moment ([`ModelFile::fingerprint`]). Cloning shares the bytes.
#[derive(Clone)]
pub struct ModelFile {
    path: PathBuf,
    bytes: Arc<[u8]>,
    fingerprint: Option<String>,
}

impl std::fmt::Debug for ModelFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelFile").field("path", &self.path).field("bytes", &self.bytes.len()).finish()
    }
}

impl ModelFile {
    /// Read the file at `path`. A missing path and a folder are errors that say so.
    ///
    /// ```
    /// # fn main() -> attrib_core::Result<()> {
    /// let err = attrib_core::ModelFile::read("/no/such/model.pt").unwrap_err();
    /// assert!(matches!(err, attrib_core::AttribError::ModelNotFound { .. }));
    /// # Ok(())
    /// # }
    /// ```
    pub fn read(path: impl AsRef<Path>) -> Result<ModelFile> {
        let path = path.as_ref().to_path_buf();
        if !path.exists() {
            return Err(AttribError::ModelNotFound { path });
        }
        if path.is_dir() {
            return Err(AttribError::ModelLoad { path, reason: "it is a folder, not a file".into() });
        }
        // The identity before the bytes: a file replaced in between gets the identity of the
        // version it replaced, which no later load can see again; taken after, the new
        // version's identity could be paired with the old bytes.
        let fingerprint = identity(&path);
        let bytes = std::fs::read(&path).map_err(|e| AttribError::ModelLoad { path: path.clone(), reason: e.to_string() })?;
        Ok(ModelFile { path, bytes: bytes.into(), fingerprint })
    }

    /// Where the bytes were read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's bytes as read.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The file's canonical path, size and modification time when it was read: what the
    /// evaluator's remembered decisions are keyed by. `None` where the file system does not say.
    pub fn fingerprint(&self) -> Option<&str> {
        self.fingerprint.as_deref()
    }

    /// A new module from the bytes on `device`, in evaluation mode.
    ///
    /// Through tch, which copies the bytes on the way (for a moment about three times the file's
    /// size; the copies attrib-core's own C++ makes, frozen, rewritten and layer, read the bytes
    /// in place). The file is not read again: an identity check (size, modification time) could
    /// not tell a file replaced within the file system's time resolution.
    pub fn load_module(&self, device: Device) -> Result<CModule> {
        let mut module = CModule::load_data_on_device(&mut std::io::Cursor::new(&self.bytes[..]), device)
            .map_err(|e| self.error(first_line(&e.to_string())))?;
        module.set_eval();
        Ok(module)
    }

    /// A load error naming this file.
    pub(crate) fn error(&self, reason: String) -> AttribError {
        AttribError::ModelLoad { path: self.path.clone(), reason }
    }

    /// The C++ side's device code: -1 for the CPU, k for CUDA device k; `what` names the copy for
    /// the error on other devices.
    pub(crate) fn device_code(&self, device: Device, what: &str) -> Result<i32> {
        match device {
            Device::Cpu => Ok(-1),
            Device::Cuda(i) => Ok(i as i32),
            other => Err(self.error(format!("{what} is not supported on {other:?}"))),
        }
    }
}

fn identity(path: &Path) -> Option<String> {
    let path = std::fs::canonicalize(path).ok()?;
    let meta = std::fs::metadata(&path).ok()?;
    let modified = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(format!("{}:{}:{}.{:09}", path.display(), meta.len(), modified.as_secs(), modified.subsec_nanos()))
}
