//! API keys, stored (format: `pulse_core::api_key`). Only a SHA-256 hash of
//! the whole key is stored, and it is compared in constant time.

use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::Result;

#[derive(Clone)]
pub struct ApiKeyStore {
    pool: PgPool,
}

/// Who a valid key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
}

/// What checking a presented key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    Valid(ApiKey),
    Revoked,
    Unknown,
}

fn hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

impl ApiKeyStore {
    pub fn new(pool: PgPool) -> ApiKeyStore {
        ApiKeyStore { pool }
    }

    /// Creates a key named `name` and returns it: the only time it is seen.
    pub async fn create(&self, name: &str) -> Result<String> {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let id = Uuid::new_v4();
        let lookup = id.simple().to_string()[..8].to_string();
        let key = pulse_core::api_key::format(&lookup, &secret);
        sqlx::query("INSERT INTO api_keys (id, name, lookup, key_hash) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(name)
            .bind(&lookup)
            .bind(hash(&key))
            .execute(&self.pool)
            .await?;
        Ok(key)
    }

    /// Revokes every live key named `name`; returns how many.
    pub async fn revoke(&self, name: &str) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE api_keys SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL",
        )
        .bind(name)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    pub async fn check(&self, presented: &str) -> Result<KeyCheck> {
        let Some(lookup) = pulse_core::api_key::lookup(presented) else {
            return Ok(KeyCheck::Unknown);
        };
        let row: Option<(Uuid, String, Vec<u8>, bool)> = sqlx::query_as(
            "SELECT id, name, key_hash, revoked_at IS NOT NULL FROM api_keys WHERE lookup = $1",
        )
        .bind(lookup)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some((id, name, stored, revoked)) if bool::from(stored.ct_eq(&hash(presented))) => {
                if revoked {
                    KeyCheck::Revoked
                } else {
                    KeyCheck::Valid(ApiKey { id, name })
                }
            }
            _ => KeyCheck::Unknown,
        })
    }
}
