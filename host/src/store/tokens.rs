//! API tokens: created with a random secret shown once, stored as a salted hash,
//! checked in constant time.

use redb::ReadableTable;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{
    NewToken, Result, Scope, Store, StoreError, TOKENS, TokenRecord, all, encode, get, new_id, now,
};

fn hash(salt: &str, secret: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(secret.as_bytes());
    h.finalize().to_vec()
}

impl Store {
    /// Creates a token; its secret is returned now and never again.
    pub fn create_token(&self, name: &str, scope: Scope) -> Result<NewToken> {
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
        let txn = self.write()?;
        txn.open_table(TOKENS)?
            .insert(token_id.as_str(), encode(&record).as_str())?;
        txn.commit()?;
        Ok(NewToken {
            token_id,
            token_secret,
            name: name.to_owned(),
            scope,
        })
    }

    /// Checks a token id and secret; the comparison takes the same time whatever matches.
    pub fn verify_token(&self, token_id: &str, secret: &str) -> Result<Option<TokenRecord>> {
        let record: Option<TokenRecord> =
            get(&self.read()?.open_table(TOKENS)?, "tokens", token_id)?;
        let Some(record) = record else {
            // Spend the same hashing work as a real check.
            let _ = hash("", secret);
            return Ok(None);
        };
        let expected = hex::decode(&record.secret_hash).unwrap_or_default();
        let ok: bool = hash(&record.salt, secret).ct_eq(&expected).into();
        Ok(ok.then_some(record))
    }

    /// Checks a bearer value `<token_id>:<token_secret>`.
    pub fn verify_bearer(&self, bearer: &str) -> Result<Option<TokenRecord>> {
        match bearer.split_once(':') {
            Some((id, secret)) => self.verify_token(id, secret),
            None => Ok(None),
        }
    }

    /// Every token (without secrets).
    pub fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        all(&self.read()?.open_table(TOKENS)?, "tokens")
    }

    /// Deletes a token so it stops working at once; false if there was none.
    pub fn revoke_token(&self, token_id: &str) -> Result<bool> {
        let txn = self.write()?;
        let removed = txn.open_table(TOKENS)?.remove(token_id)?.is_some();
        txn.commit()?;
        Ok(removed)
    }

    /// Whether any token exists yet.
    pub fn has_tokens(&self) -> Result<bool> {
        Ok(self.read()?.open_table(TOKENS)?.first()?.is_some())
    }
}
