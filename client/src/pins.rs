//! Known relays: the key each `host:port` presented on first contact
//! (trust on first use, as ssh's `known_hosts`).
//!
//! File format: one relay per line, `host:port SHA256:...`; `#` starts a
//! comment. The client appends a line on first contact and refuses a relay
//! whose key differs from its line.

use std::io::Write;
use std::path::{Path, PathBuf};

use hush_crypto::Fingerprint;

/// What the pin file says about a relay's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinCheck {
    /// The key matches the pinned one.
    Known,
    /// First contact: the key was pinned now.
    Pinned,
}

/// Why a relay's key is not accepted.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The relay presented a different key from the pinned one.
    #[error(
        "the relay at {addr} presented key {presented}, but {file} pins {pinned} (line {line}). \
         Someone may be intercepting the connection. If the relay's operator really changed its key, \
         confirm the new fingerprint with them, then delete line {line} of {file} and connect again."
    )]
    Changed {
        /// The relay's address.
        addr: String,
        /// The key it presented now.
        presented: Fingerprint,
        /// The key pinned earlier.
        pinned: Fingerprint,
        /// The pin file.
        file: String,
        /// Line number of the pin.
        line: usize,
    },
    /// The pin file cannot be read or written.
    #[error("cannot use the known-relays file {file}: {error}")]
    File {
        /// The file.
        file: String,
        /// Why.
        error: String,
    },
}

/// The known-relays file.
#[derive(Debug, Clone)]
pub struct KnownRelays {
    path: PathBuf,
}

impl KnownRelays {
    /// Uses the file at `path` (created on first pin).
    #[must_use]
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// The file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn file_error(&self, e: impl std::fmt::Display) -> PinError {
        PinError::File {
            file: self.path.display().to_string(),
            error: e.to_string(),
        }
    }

    /// The key pinned for `addr`, if any (nothing is written).
    ///
    /// # Errors
    /// [`PinError::File`] if the file cannot be read.
    pub fn pinned(&self, addr: &str) -> Result<Option<Fingerprint>, PinError> {
        Ok(self.find(addr)?.map(|(fp, _)| fp))
    }

    /// The pin for `addr` and its line number.
    fn find(&self, addr: &str) -> Result<Option<(Fingerprint, usize)>, PinError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(self.file_error(e)),
        };
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(host), Some(fp)) = (parts.next(), parts.next()) else {
                continue;
            };
            if host != addr {
                continue;
            }
            let pinned: Fingerprint = fp
                .parse()
                .map_err(|e| self.file_error(format!("line {}: {e}", i + 1)))?;
            return Ok(Some((pinned, i + 1)));
        }
        Ok(None)
    }

    /// Checks `presented` against the pin for `addr`, pinning it if there
    /// is none.
    ///
    /// # Errors
    /// [`PinError::Changed`] for a different key; [`PinError::File`] if the
    /// file cannot be used.
    pub fn check(&self, addr: &str, presented: Fingerprint) -> Result<PinCheck, PinError> {
        if let Some((pinned, line)) = self.find(addr)? {
            if pinned == presented {
                return Ok(PinCheck::Known);
            }
            return Err(PinError::Changed {
                addr: addr.to_owned(),
                presented,
                pinned,
                file: self.path.display().to_string(),
                line,
            });
        }
        if let Some(dir) = self.path.parent() {
            crate::state::create_private_dir(dir).map_err(|e| self.file_error(e))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| self.file_error(e))?;
        writeln!(f, "{addr} {presented}").map_err(|e| self.file_error(e))?;
        Ok(PinCheck::Pinned)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn first_use_pins_then_matches_then_refuses_a_change() {
        let dir = std::env::temp_dir().join(format!("hush-pins-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pins = KnownRelays::new(dir.join("sub/known_relays"));
        let a = Fingerprint::from_bytes([1; 32]);
        let b = Fingerprint::from_bytes([2; 32]);
        assert_eq!(pins.check("h:1", a).unwrap(), PinCheck::Pinned);
        assert_eq!(pins.check("h:1", a).unwrap(), PinCheck::Known);
        assert_eq!(
            pins.check("h:2", b).unwrap(),
            PinCheck::Pinned,
            "per host:port"
        );
        let err = pins.check("h:1", b).unwrap_err().to_string();
        assert!(
            err.contains(&a.to_string()) && err.contains(&b.to_string()),
            "{err}"
        );
        assert!(err.contains("delete line 1"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
