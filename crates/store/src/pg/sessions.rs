//! Dashboard sessions: made by signing in with an API key, looked up by the
//! cookie's token (only its SHA-256 hash is stored), ended by signing out,
//! by expiry, or by revoking the key.

use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::Result;

#[derive(Clone)]
pub struct SessionStore {
    pool: PgPool,
}

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The API key it was opened with.
    pub api_key_id: Uuid,
    /// That key's name, shown as who is signed in.
    pub key_name: String,
    /// The token every form of this session must send back.
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// A new session: the cookie's token (seen only now) and the session.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub session: Session,
}

fn random_token() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

impl SessionStore {
    pub fn new(pool: PgPool) -> SessionStore {
        SessionStore { pool }
    }

    /// Opens a session for a (valid) API key, lasting `ttl_secs`. Expired
    /// sessions are swept at the same time.
    pub async fn create(&self, api_key_id: Uuid, ttl_secs: i64) -> Result<NewSession> {
        sqlx::query("DELETE FROM web_sessions WHERE expires_at < now()")
            .execute(&self.pool)
            .await?;
        let token = random_token();
        let csrf = random_token();
        let (expires_at, key_name): (DateTime<Utc>, String) = sqlx::query_as(
            "WITH ins AS ( \
                INSERT INTO web_sessions (token_hash, api_key_id, csrf_token, expires_at) \
                VALUES ($1, $2, $3, now() + make_interval(secs => $4::float8)) \
                RETURNING api_key_id, expires_at) \
             SELECT ins.expires_at, k.name FROM ins JOIN api_keys k ON k.id = ins.api_key_id",
        )
        .bind(hash(&token))
        .bind(api_key_id)
        .bind(&csrf)
        .bind(ttl_secs as f64)
        .fetch_one(&self.pool)
        .await?;
        Ok(NewSession {
            token,
            session: Session {
                api_key_id,
                key_name,
                csrf_token: csrf,
                expires_at,
            },
        })
    }

    /// The live session a cookie's token names: not expired, and its key
    /// not revoked.
    pub async fn get(&self, token: &str) -> Result<Option<Session>> {
        let row: Option<(Uuid, String, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT s.api_key_id, k.name, s.csrf_token, s.expires_at \
             FROM web_sessions s JOIN api_keys k ON k.id = s.api_key_id \
             WHERE s.token_hash = $1 AND s.expires_at > now() AND k.revoked_at IS NULL",
        )
        .bind(hash(token))
        .fetch_optional(&self.pool)
        .await?;
        Ok(
            row.map(|(api_key_id, key_name, csrf_token, expires_at)| Session {
                api_key_id,
                key_name,
                csrf_token,
                expires_at,
            }),
        )
    }

    /// Ends a session (signing out); ending one that is gone is fine.
    pub async fn delete(&self, token: &str) -> Result<()> {
        sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1")
            .bind(hash(token))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
