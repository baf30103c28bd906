//! The key that seals secret values at rest: 32 random bytes in `secrets.key` beside the
//! state file (mode 0600, made on first open), used with XChaCha20-Poly1305. A value is
//! sealed with a fresh random nonce and the secret's name as associated data, so a sealed
//! value cannot be moved to another secret's record unnoticed.

use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "secrets.key";

const NONCE_LEN: usize = 24;

/// Why the secrets key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("secrets key {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The key file does not hold a key.
    #[error(
        "secrets key {path} is not 64 hex digits; restore the key file this data directory was created with"
    )]
    Malformed {
        /// The key file.
        path: PathBuf,
    },
    /// Sealed secrets exist but their key is gone.
    #[error(
        "the state has sealed secrets but the key file {path} is missing; restore it (without it the secrets cannot be read), or delete the secrets"
    )]
    Missing {
        /// Where the key should be.
        path: PathBuf,
    },
    /// A sealed value does not open with this key.
    #[error(
        "secret {name:?} does not open with the key in {path}: the key file is not the one these secrets were sealed with, or the record was altered"
    )]
    Wrong {
        /// The secret whose value did not open.
        name: String,
        /// The key file.
        path: PathBuf,
    },
}

/// Seals and opens secret values.
pub(super) struct SecretKey {
    cipher: XChaCha20Poly1305,
    path: PathBuf,
}

impl SecretKey {
    /// The key file of the state file at `state`.
    pub(super) fn path_for(state: &Path) -> PathBuf {
        state
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(KEY_FILE)
    }

    /// Reads the key at `path`; when there is none, makes one if `may_create` (no sealed
    /// secret exists yet) and refuses otherwise.
    pub(super) fn load(path: &Path, may_create: bool) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && may_create => {
                let key: [u8; 32] = rand::random();
                write_new_private(path, format!("{}\n", hex::encode(key)).as_bytes())
                    .map_err(io)?;
                tracing::info!(path = %path.display(), "created the key that seals secrets");
                return Ok(Self::from_bytes(key, path));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeyError::Missing {
                    path: path.to_owned(),
                });
            }
            Err(e) => return Err(io(e)),
        };
        let malformed = || KeyError::Malformed {
            path: path.to_owned(),
        };
        let bytes = hex::decode(text.trim()).map_err(|_| malformed())?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| malformed())?;
        Ok(Self::from_bytes(key, path))
    }

    /// A new random key that is never written: for a store that ends with the process.
    pub(super) fn ephemeral(state: &Path) -> Self {
        Self::from_bytes(rand::random(), &Self::path_for(state))
    }

    fn from_bytes(key: [u8; 32], path: &Path) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(&key.into()),
            path: path.to_owned(),
        }
    }

    /// The key file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// `plain` sealed for the secret `name`: hex of nonce ‖ ciphertext ‖ tag.
    pub(super) fn seal(&self, name: &str, plain: &[u8]) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let payload = Payload {
            msg: plain,
            aad: name.as_bytes(),
        };
        // Encryption fails only for messages past 256 GiB.
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        hex::encode(out)
    }

    /// Opens what [`seal`](Self::seal) made for `name`.
    pub(super) fn open(&self, name: &str, sealed: &str) -> Result<Vec<u8>, KeyError> {
        let wrong = || KeyError::Wrong {
            name: name.to_owned(),
            path: self.path.clone(),
        };
        let bytes = hex::decode(sealed).map_err(|_| wrong())?;
        if bytes.len() < NONCE_LEN {
            return Err(wrong());
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let payload = Payload {
            msg: sealed,
            aad: name.as_bytes(),
        };
        self.cipher
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| wrong())
    }
}

/// Writes a new file readable by its owner only; an existing file is an error, so a key
/// is never overwritten.
fn write_new_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_only_with_the_same_key_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let key = SecretKey::load(&path, true).unwrap();
        let sealed = key.seal("db", b"hunter2");
        assert!(!sealed.contains(&hex::encode(b"hunter2")));
        assert_eq!(key.open("db", &sealed).unwrap(), b"hunter2");
        assert!(matches!(
            key.open("other", &sealed),
            Err(KeyError::Wrong { .. })
        ));
        let again = SecretKey::load(&path, false).unwrap();
        assert_eq!(again.open("db", &sealed).unwrap(), b"hunter2");

        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let other = dir.path().join("other.key");
        let wrong = SecretKey::load(&other, true).unwrap();
        assert!(matches!(
            wrong.open("db", &sealed),
            Err(KeyError::Wrong { .. })
        ));
    }

    #[test]
    fn a_missing_key_is_refused_unless_it_may_be_made() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        assert!(matches!(
            SecretKey::load(&path, false),
            Err(KeyError::Missing { .. })
        ));
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(
            SecretKey::load(&path, true),
            Err(KeyError::Malformed { .. })
        ));
    }
}
