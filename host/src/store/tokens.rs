//! API tokens: created with a random secret shown once, stored as a salted hash,
//! checked in constant time.

use redb::ReadableTable;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::embedded::{Redb, TOKENS, all, get};
use super::{NewToken, Result, Scope, StoreError, TokenRecord, encode, new_id, now};

fn hash(salt: &str, secret: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(secret.as_bytes());
    h.finalize().to_vec()
}

/// A new token: the record to store (its secret only as a salted hash) and what to show once.
pub(super) fn new_token(name: &str, scope: Scope) -> Result<(TokenRecord, NewToken)> {
    if name.is_empty() || name.len() > 100 {
        return Err(StoreError::Invalid(
            "a token name has 1 to 100 characters".into(),
        ));
    }
    let token_id = new_id("tk");
    let token_secret = hex::encode(rand::random::<[u8; 24]>());
    let salt = hex::encode(rand::random::<[u8; 16]>());
    let record = TokenRecord {
        token_id: token_id.clone(),
        name: name.to_owned(),
        scope,
        secret_hash: hex::encode(hash(&salt, &token_secret)),
        salt,
        created_at: now(),
    };
    let shown = NewToken {
        token_id,
        token_secret,
        name: name.to_owned(),
        scope,
    };
    Ok((record, shown))
}

/// The token if `secret` is its secret; the comparison takes the same time whatever matches.
pub(super) fn check_secret(record: Option<TokenRecord>, secret: &str) -> Option<TokenRecord> {
    let Some(record) = record else {
        // Spend the same hashing work as a real check.
        let _ = hash("", secret);
        return None;
    };
    let expected = hex::decode(&record.secret_hash).unwrap_or_default();
    let ok: bool = hash(&record.salt, secret).ct_eq(&expected).into();
    ok.then_some(record)
}

/// Refuses to revoke the last admin token: without it no one could make tokens again.
pub(super) fn check_revocable(record: &TokenRecord, tokens: &[TokenRecord]) -> Result<()> {
    let admins = tokens.iter().filter(|t| t.scope == Scope::Admin).count();
    if record.scope == Scope::Admin && admins <= 1 {
        return Err(StoreError::Conflict(format!(
            "{} is the last admin token: create another admin token before revoking it",
            record.token_id
        )));
    }
    Ok(())
}

impl Redb {
    pub(super) fn create_token(&self, name: &str, scope: Scope) -> Result<NewToken> {
        let (record, shown) = new_token(name, scope)?;
        let txn = self.write()?;
        txn.open_table(TOKENS)?
            .insert(record.token_id.as_str(), encode(&record).as_str())?;
        txn.commit()?;
        Ok(shown)
    }

    pub(super) fn token(&self, token_id: &str) -> Result<Option<TokenRecord>> {
        get(&self.read()?.open_table(TOKENS)?, "tokens", token_id)
    }

    pub(super) fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        all(&self.read()?.open_table(TOKENS)?, "tokens")
    }

    /// Deletes a token so it stops working at once; false if there was none. The last
    /// admin token is kept (a conflict): without it no one could make tokens again.
    pub(super) fn revoke_token(&self, token_id: &str) -> Result<bool> {
        let txn = self.write()?;
        {
            let mut table = txn.open_table(TOKENS)?;
            let Some(record) = get::<TokenRecord>(&table, "tokens", token_id)? else {
                return Ok(false);
            };
            check_revocable(&record, &all::<TokenRecord>(&table, "tokens")?)?;
            table.remove(token_id)?;
        }
        txn.commit()?;
        Ok(true)
    }

    pub(super) fn has_tokens(&self) -> Result<bool> {
        Ok(self.read()?.open_table(TOKENS)?.first()?.is_some())
    }
}
