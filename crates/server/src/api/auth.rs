//! Who may call the API: `Authorization: Bearer <key>` on every `/checks`
//! route (`/health`, `/ready` are open), and rate limits: per client IP
//! before the key is looked at (slows key guessing), then per key. Over a
//! limit is 429 with `Retry-After`.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use pulse_store::pg::api_keys::KeyCheck;
use serde_json::json;
use uuid::Uuid;

use super::{ApiError, AppState};

/// Requests per second allowed per key and per client IP (bursts of twice
/// that).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_key: u32,
    pub per_ip: u32,
}

pub struct RateLimits {
    by_key: DefaultKeyedRateLimiter<Uuid>,
    by_ip: DefaultKeyedRateLimiter<IpAddr>,
}

fn quota(per_sec: u32) -> Quota {
    let rate = NonZeroU32::new(per_sec.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(per_sec.max(1).saturating_mul(2)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

impl RateLimits {
    pub fn new(limits: Limits) -> Arc<RateLimits> {
        Arc::new(RateLimits {
            by_key: RateLimiter::keyed(quota(limits.per_key)),
            by_ip: RateLimiter::keyed(quota(limits.per_ip)),
        })
    }
}

fn too_many(wait: std::time::Duration) -> Response {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut resp = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({ "error": format!("rate limit exceeded, retry in {secs} s") })),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

fn unauthorized(status: StatusCode, msg: &str) -> Response {
    let mut resp = (status, Json(json!({ "error": msg }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is
/// case-insensitive (RFC 9110 section 11.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

pub async fn require_key(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let clock = DefaultClock::default();
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
        if let Err(not_until) = state.limits.by_ip.check_key(&peer.ip()) {
            return too_many(not_until.wait_time_from(clock.now()));
        }
    }
    if !state.auth_required {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let Some(presented) = presented else {
        return unauthorized(
            StatusCode::UNAUTHORIZED,
            "authorization: missing API key; send Authorization: Bearer <key>",
        );
    };
    match state.keys.check(presented).await {
        Err(e) => ApiError::from(e).into_response(),
        Ok(KeyCheck::Unknown) => {
            unauthorized(StatusCode::UNAUTHORIZED, "authorization: invalid API key")
        }
        Ok(KeyCheck::Revoked) => {
            unauthorized(StatusCode::FORBIDDEN, "authorization: API key revoked")
        }
        Ok(KeyCheck::Valid(key)) => {
            if let Err(not_until) = state.limits.by_key.check_key(&key.id) {
                return too_many(not_until.wait_time_from(clock.now()));
            }
            next.run(req).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for v in ["Bearer k1", "bearer k1", "BEARER k1", "bEaReR  k1 "] {
            assert_eq!(bearer_token(v), Some("k1"), "{v:?}");
        }
    }

    #[test]
    fn other_schemes_and_bare_tokens_are_not_bearer_tokens() {
        for v in ["Basic k1", "k1", "Bearerk1", ""] {
            assert_eq!(bearer_token(v), None, "{v:?}");
        }
    }
}
