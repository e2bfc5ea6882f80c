//! Signing in and out, and who is signed in.
//!
//! Signing in takes an API key (checked as the API checks it) and opens a
//! session stored in Postgres (`web_sessions`); the browser keeps only a
//! random token, in a cookie that is `HttpOnly`, `SameSite=Strict`, and
//! `Secure` when the page was served over HTTPS (a proxy's
//! `X-Forwarded-Proto: https`). Every form carries the session's CSRF
//! token, and a form whose `Origin` is another site is refused too.

use std::net::SocketAddr;

use askama::Template;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use pulse_store::pg::api_keys::KeyCheck;
use pulse_store::pg::sessions::Session;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::pages::Chrome;
use super::{WebError, WebState};

/// The session cookie's name.
pub const COOKIE: &str = "pulse_session";
/// How long a session lasts from signing in.
pub const SESSION_TTL_SECS: i64 = 12 * 3600;
/// Largest form body read.
const MAX_FORM_BYTES: usize = 256 * 1024;

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Whether the request reached us over HTTPS (through a proxy that says
/// so; this server itself speaks plain HTTP).
fn over_https(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("proto=https"));
    forwarded_proto || forwarded
}

/// The `Set-Cookie` value that stores `token`, or (with `None`) clears it.
pub fn set_cookie(token: Option<&str>, secure: bool) -> String {
    let (value, age) = match token {
        Some(t) => (t, SESSION_TTL_SECS),
        None => ("", 0),
    };
    let mut c = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}");
    if secure {
        c.push_str("; Secure");
    }
    c
}

/// A signed-in request: the session and its cookie's token. Pages that
/// need one redirect to `/login` without it.
pub struct SignedIn {
    pub session: Session,
    pub token: String,
}

impl SignedIn {
    pub fn chrome(&self) -> Chrome {
        Chrome {
            user: Some(self.session.key_name.clone()),
            csrf: self.session.csrf_token.clone(),
        }
    }

    /// Refuses a form that does not carry this session's CSRF token.
    pub fn check_csrf(&self, form: &FormData) -> Result<(), WebError> {
        let sent = form.get("csrf").unwrap_or_default();
        if bool::from(sent.as_bytes().ct_eq(self.session.csrf_token.as_bytes())) {
            Ok(())
        } else {
            Err(WebError::Forbidden(
                "This form has expired or did not come from this site. Reload the page and try again.",
            ))
        }
    }
}

/// Why a page needs a sign-in first.
pub enum SignInFirst {
    Redirect(String),
    Error(WebError),
}

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        match self {
            SignInFirst::Redirect(to) => Redirect::to(&to).into_response(),
            SignInFirst::Error(e) => e.into_response(),
        }
    }
}

impl FromRequestParts<WebState> for SignedIn {
    type Rejection = SignInFirst;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &WebState,
    ) -> Result<Self, Self::Rejection> {
        let here = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let login = if here == "/" {
            "/login".to_string()
        } else {
            format!("/login?next={}", encode(&here))
        };
        let Some(token) = cookie(&parts.headers, COOKIE).filter(|t| !t.is_empty()) else {
            return Err(SignInFirst::Redirect(login));
        };
        match state.sessions.get(token).await {
            Ok(Some(session)) => Ok(SignedIn {
                session,
                token: token.to_string(),
            }),
            Ok(None) => Err(SignInFirst::Redirect(login)),
            Err(e) => Err(SignInFirst::Error(e.into())),
        }
    }
}

/// The client's address, when the server loop recorded it.
pub struct PeerIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(PeerIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// A form body (`application/x-www-form-urlencoded`), every pair in order
/// (a name may repeat). Posted from another site (`Origin`) it is refused.
pub struct FormData(pub Vec<(String, String)>);

impl FormData {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn parse(body: &[u8]) -> FormData {
        FormData(url::form_urlencoded::parse(body).into_owned().collect())
    }
}

/// Whether the `Origin` header, when sent, is this host.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

impl<S: Send + Sync> FromRequest<S> for FormData {
    type Rejection = WebError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !same_origin(req.headers()) {
            return Err(WebError::Forbidden("Forms are only taken from this site."));
        }
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(WebError::BadRequest("expected a form".into()));
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_FORM_BYTES)
            .await
            .map_err(|_| WebError::BadRequest("the form is too large".into()))?;
        Ok(FormData::parse(&bytes))
    }
}

/// Percent-encodes a query value.
pub fn encode(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// Where to go after signing in: a path on this site, never another host.
/// Where to go after signing in: a path on this site, or `/`. Only visible
/// ASCII is kept, with no backslash: browsers drop tabs and newlines from a
/// URL (`/\t/evil.example/` becomes `//evil.example/`, another site) and
/// read `\` as `/`; and a `Location` header cannot hold control characters.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n.into()
        }
        _ => "/".into(),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub chrome: Chrome,
    pub next: String,
    pub error: Option<String>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn login_form(Query(q): Query<NextQuery>) -> Result<Response, WebError> {
    super::html(&LoginPage {
        chrome: Chrome::public(),
        next: safe_next(q.next.as_deref()),
        error: None,
    })
}

pub async fn login(
    State(state): State<WebState>,
    PeerIp(peer): PeerIp,
    headers: HeaderMap,
    form: FormData,
) -> Result<Response, WebError> {
    if let Some(ip) = peer {
        if state.sign_ins.check_key(&ip).is_err() {
            return Err(WebError::TooMany);
        }
    }
    let next = safe_next(form.get("next"));
    let key = form.get("api_key").unwrap_or_default().trim();
    let refused = |status: StatusCode, error: &str| -> Result<Response, WebError> {
        let page = LoginPage {
            chrome: Chrome::public(),
            next: next.clone(),
            error: Some(error.to_string()),
        };
        Ok((status, Html(page.render()?)).into_response())
    };
    let found = match state.app.keys.check(key).await? {
        KeyCheck::Valid(found) => found,
        KeyCheck::Unknown => {
            return refused(StatusCode::UNAUTHORIZED, "That is not a valid API key.")
        }
        KeyCheck::Revoked => {
            return refused(StatusCode::FORBIDDEN, "That API key has been revoked.")
        }
    };
    let new = state.sessions.create(found.id, SESSION_TTL_SECS).await?;
    tracing::info!(key = %found.name, "signed in");
    let mut resp = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(Some(&new.token), over_https(&headers))) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

pub async fn logout(
    State(state): State<WebState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    form: FormData,
) -> Result<Response, WebError> {
    signed_in.check_csrf(&form)?;
    state.sessions.delete(&signed_in.token).await?;
    let mut resp = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(None, over_https(&headers))) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_http_only_and_strict_and_secure_over_https() {
        let c = set_cookie(Some("tok"), false);
        assert_eq!(
            c,
            "pulse_session=tok; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200"
        );
        assert!(set_cookie(Some("tok"), true).ends_with("; Secure"));
        assert!(set_cookie(None, false)
            .contains("pulse_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"));
    }

    #[test]
    fn https_is_what_the_proxy_says() {
        let mut h = HeaderMap::new();
        assert!(!over_https(&h));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(over_https(&h));
        let mut h = HeaderMap::new();
        h.insert(
            header::FORWARDED,
            HeaderValue::from_static("for=1.2.3.4;proto=https"),
        );
        assert!(over_https(&h));
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; pulse_session=xyz; b=2"),
        );
        assert_eq!(cookie(&h, COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn after_signing_in_only_paths_on_this_site_are_followed() {
        assert_eq!(safe_next(Some("/checks/1")), "/checks/1");
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil",
            "evil",
            "/\t/evil.example/",
            "/\n/evil.example/",
            "/\r/evil.example/",
            "/\x0b/evil.example/",
            "/ /evil.example/",
            "/caf\u{e9}",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn a_form_from_another_site_is_not_same_origin() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("pulse.local:8080"));
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://pulse.local:8080"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
    }
}
