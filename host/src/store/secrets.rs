//! Secrets: named sets of key/value pairs given to functions as environment variables.
//! Their values are sealed at rest with the data directory's key (`seal`); names, keys
//! and dates stay readable so listing needs no key.

use std::collections::BTreeMap;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::embedded::Redb;
use super::seal::{KeyError, SecretKey};
use super::{Result, StoreError, check_name, decode, encode, now};

pub(super) const SECRETS: TableDefinition<&str, &str> = TableDefinition::new("secrets");

/// A named set of key/value pairs given to functions as environment variables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretRecord {
    /// DNS-safe name.
    pub name: String,
    /// The values; never listed by the API.
    pub values: BTreeMap<String, String>,
    /// RFC 3339.
    pub created_at: String,
}

/// A secret as redb holds it.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredSecret {
    name: String,
    created_at: String,
    /// The JSON of the values, sealed (see `seal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<String>,
    /// Values in clear text, as stores made before sealing held them; sealed at open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    values: Option<BTreeMap<String, String>>,
}

fn valid_env_key(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Loads the key of the store at `path` and seals any secret still held in clear text:
/// a missing key is made only while no sealed secret exists, and a key that does not
/// open every sealed secret is refused now rather than when a function needs one.
pub(super) fn open_key(db: &redb::Database, path: &std::path::Path) -> Result<SecretKey> {
    let stored: Vec<StoredSecret> = {
        let txn = db.begin_read()?;
        let table = txn.open_table(SECRETS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (_, raw) = entry?;
            out.push(decode("secrets", raw.value())?);
        }
        out
    };
    let any_sealed = stored.iter().any(|s| s.sealed.is_some());
    let key = SecretKey::load(&SecretKey::path_for(path), !any_sealed)?;
    for secret in &stored {
        if let Some(sealed) = &secret.sealed {
            key.open(&secret.name, sealed)?;
        }
    }
    let clear: Vec<StoredSecret> = stored.into_iter().filter(|s| s.sealed.is_none()).collect();
    if !clear.is_empty() {
        let txn = db.begin_write()?;
        {
            let mut table = txn.open_table(SECRETS)?;
            for secret in clear {
                let values = secret.values.unwrap_or_default();
                let sealed = seal_record(&key, &secret.name, &values, secret.created_at);
                table.insert(secret.name.as_str(), encode(&sealed).as_str())?;
            }
        }
        txn.commit()?;
        tracing::info!("sealed the secrets that were stored in clear text");
    }
    Ok(key)
}

pub(super) fn seal_record(
    key: &SecretKey,
    name: &str,
    values: &BTreeMap<String, String>,
    created_at: String,
) -> StoredSecret {
    StoredSecret {
        name: name.to_owned(),
        created_at,
        sealed: Some(key.seal(name, encode(values).as_bytes())),
        values: None,
    }
}

/// Checks a secret's name and keys and seals its values: what to store, what to return.
pub(super) fn sealed_secret(
    key: &SecretKey,
    name: &str,
    values: BTreeMap<String, String>,
) -> Result<(StoredSecret, SecretRecord)> {
    check_name("secret name", name)?;
    if let Some(bad) = values.keys().find(|k| !valid_env_key(k)) {
        return Err(StoreError::Invalid(format!(
            "secret key {bad:?} is not a valid environment variable name (A-Z, a-z, 0-9, _)"
        )));
    }
    let created_at = now();
    let stored = seal_record(key, name, &values, created_at.clone());
    Ok((
        stored,
        SecretRecord {
            name: name.to_owned(),
            values,
            created_at,
        },
    ))
}

/// Opens a stored secret's values.
pub(super) fn unseal(key: &SecretKey, stored: StoredSecret) -> Result<SecretRecord> {
    let values = match (&stored.sealed, stored.values) {
        (Some(sealed), _) => {
            let plain = key.open(&stored.name, sealed)?;
            serde_json::from_slice(&plain).map_err(|source| StoreError::Corrupt {
                table: "secrets",
                source,
            })?
        }
        // Only a record written after open by an older binary could get here.
        (None, Some(values)) => values,
        (None, None) => {
            return Err(KeyError::Wrong {
                name: stored.name,
                path: key.path().to_owned(),
            }
            .into());
        }
    };
    Ok(SecretRecord {
        name: stored.name,
        values,
        created_at: stored.created_at,
    })
}

impl Redb {
    /// Creates or replaces a secret.
    pub(super) fn put_secret(
        &self,
        name: &str,
        values: BTreeMap<String, String>,
    ) -> Result<SecretRecord> {
        let (stored, record) = sealed_secret(&self.key, name, values)?;
        let txn = self.write()?;
        txn.open_table(SECRETS)?
            .insert(name, encode(&stored).as_str())?;
        txn.commit()?;
        Ok(record)
    }

    /// One secret with its values.
    pub(super) fn get_secret(&self, name: &str) -> Result<Option<SecretRecord>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SECRETS)?;
        match table.get(name)? {
            Some(raw) => Ok(Some(unseal(&self.key, decode("secrets", raw.value())?)?)),
            None => Ok(None),
        }
    }

    /// Every secret (callers must not show values).
    pub(super) fn list_secrets(&self) -> Result<Vec<SecretRecord>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SECRETS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (_, raw) = entry?;
            out.push(unseal(&self.key, decode("secrets", raw.value())?)?);
        }
        Ok(out)
    }

    /// Deletes a secret.
    pub(super) fn delete_secret(&self, name: &str) -> Result<()> {
        let txn = self.write()?;
        let removed = txn.open_table(SECRETS)?.remove(name)?.is_some();
        txn.commit()?;
        if removed {
            Ok(())
        } else {
            Err(StoreError::NotFound(format!("no secret named {name:?}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file_contains(path: &std::path::Path, needle: &str) -> bool {
        let bytes = std::fs::read(path).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    #[test]
    fn values_are_sealed_in_the_file_and_read_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let value = "s3cr3t-value-9f8e7d";
        {
            let store = Store::open(&path).unwrap();
            store
                .put_secret("db", values(&[("PASSWORD", value)]))
                .unwrap();
        }
        assert!(!file_contains(&path, value), "the value is in clear text");
        let store = Store::open(&path).unwrap();
        let secret = store.get_secret("db").unwrap().unwrap();
        assert_eq!(secret.values["PASSWORD"], value);
        assert_eq!(store.list_secrets().unwrap()[0].values["PASSWORD"], value);
    }

    #[test]
    fn a_wrong_or_missing_key_is_an_error_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let key_path = dir.path().join(super::super::KEY_FILE);
        Store::open(&path)
            .unwrap()
            .put_secret("db", values(&[("PASSWORD", "x")]))
            .unwrap();

        let original = std::fs::read(&key_path).unwrap();
        std::fs::remove_file(&key_path).unwrap();
        let missing = Store::open(&path).err().unwrap();
        assert!(matches!(missing, StoreError::Key(KeyError::Missing { .. })));
        assert!(missing.to_string().contains("missing"), "{missing}");

        std::fs::write(&key_path, format!("{}\n", hex::encode([7u8; 32]))).unwrap();
        let wrong = Store::open(&path).err().unwrap();
        assert!(matches!(wrong, StoreError::Key(KeyError::Wrong { .. })));
        assert!(wrong.to_string().contains("\"db\""), "{wrong}");

        std::fs::write(&key_path, original).unwrap();
        assert!(
            Store::open(&path)
                .unwrap()
                .get_secret("db")
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn clear_text_secrets_of_an_older_store_are_sealed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let value = "old-clear-text-4a5b6c";
        {
            let db = redb::Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            let old = serde_json::json!({
                "name": "legacy", "values": { "TOKEN": value }, "created_at": "2026-01-01T00:00:00Z"
            });
            txn.open_table(SECRETS)
                .unwrap()
                .insert("legacy", old.to_string().as_str())
                .unwrap();
            txn.commit().unwrap();
        }
        let store = Redb::open(&path).unwrap();
        let raw = {
            let txn = store.db.begin_read().unwrap();
            let table = txn.open_table(SECRETS).unwrap();
            table.get("legacy").unwrap().unwrap().value().to_owned()
        };
        assert!(!raw.contains(value), "{raw}");
        assert_eq!(
            store.get_secret("legacy").unwrap().unwrap().values["TOKEN"],
            value
        );
        drop(store);
        assert!(
            !file_contains(&path, value),
            "the old clear text is still in the file"
        );
        assert!(Store::open(&path).is_ok());
    }
}
