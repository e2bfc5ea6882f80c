//! The dashboard: server-rendered pages (askama templates in
//! `crates/server/templates/`), charts drawn as SVG on the server, and the
//! stylesheet embedded in the binary. Nothing is loaded from another host
//! and no script runs. `/status` is public; every other page needs a
//! session, opened by signing in with an API key (see [`session`]).
//!
//! The API and the pages share paths under `/checks/`: [`app`] sends a
//! request to the pages when it is one of theirs (a page a browser asks
//! for, or a form), and to the API otherwise.

mod forms;
mod pages;
pub mod reports;
mod session;
pub mod svg;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use pulse_store::pg::overview::OverviewStore;
use pulse_store::pg::sessions::SessionStore;
use pulse_store::StoreError;
use tower::ServiceExt;

use crate::api::AppState;

/// Everything a page handler reads.
#[derive(Clone)]
pub struct WebState {
    pub app: AppState,
    pub sessions: SessionStore,
    pub overview: OverviewStore,
    pub reports: reports::Reports,
    /// Sign-in attempts per client IP (slows key guessing).
    sign_ins: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Status page loads per client IP.
    status_loads: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// The status page as last rendered, shared by every visitor for
    /// [`pages::STATUS_CACHE`]; the lock also makes one render at a time.
    status_page: Arc<tokio::sync::Mutex<Option<pages::RenderedStatus>>>,
}

impl WebState {
    pub fn new(app: AppState) -> WebState {
        let pool = app.services.pool.clone();
        let per_sec = NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN);
        WebState {
            sessions: SessionStore::new(pool.clone()),
            overview: OverviewStore::new(pool),
            reports: reports::Reports::new(app.clone()),
            sign_ins: Arc::new(RateLimiter::keyed(
                Quota::per_second(per_sec).allow_burst(burst),
            )),
            status_loads: Arc::new(RateLimiter::keyed(
                Quota::per_second(pages::STATUS_PER_IP_PER_SEC)
                    .allow_burst(pages::STATUS_PER_IP_BURST),
            )),
            status_page: Arc::default(),
            app,
        }
    }
}

const CSS: &str = include_str!("../../assets/pulse.css");
const FAVICON: &str = include_str!("../../assets/favicon.svg");

/// The pages' routes.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(pages::list))
        .route("/status", get(pages::status))
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", post(session::logout))
        .route("/checks/new", get(forms::new_form).post(forms::create))
        .route("/checks/{id}", get(pages::check))
        .route("/checks/{id}/edit", get(forms::edit_form).post(forms::update))
        .route("/checks/{id}/pause", post(forms::pause))
        .route("/checks/{id}/resume", post(forms::resume))
        .route("/checks/{id}/delete", post(forms::delete))
        .route("/assets/pulse.css", get(css))
        .route("/assets/favicon.svg", get(favicon))
        .fallback(|| async { WebError::NotFound })
        .layer(axum::middleware::map_response(security_headers))
        // Pages are repetitive text: gzip makes the list of 1,000 checks
        // about a tenth of its size on the wire.
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    tracing::info_span!("page", method = %req.method(), path = %req.uri().path())
                })
                .on_request(())
                .on_response(
                    tower_http::trace::DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .latency_unit(tower_http::LatencyUnit::Millis),
                ),
        )
        .with_state(state)
}

/// The API and the pages on one port: a request goes to the pages when
/// [`is_page`] says it is theirs.
pub fn app(api: Router, pages: Router) -> Router {
    Router::new().fallback_service(tower::service_fn(move |req: Request| {
        let target = if is_page(&req) {
            pages.clone()
        } else {
            api.clone()
        };
        async move { target.oneshot(req).await }
    }))
}

/// Whether a request is for the pages: their own paths, and
/// `GET /checks/:id` from a browser (asking for HTML, without an API key),
/// which the API answers with JSON otherwise.
pub fn is_page(req: &Request) -> bool {
    let path = req.uri().path();
    if matches!(path, "/" | "/status" | "/login" | "/logout" | "/checks/new")
        || path.starts_with("/assets/")
    {
        return true;
    }
    let Some(rest) = path.strip_prefix("/checks/") else {
        return false;
    };
    match rest.split_once('/') {
        Some((_, action)) => matches!(action, "edit" | "pause" | "resume" | "delete"),
        None => {
            let headers = req.headers();
            matches!(*req.method(), Method::GET | Method::HEAD)
                && !headers.contains_key(header::AUTHORIZATION)
                && headers
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("text/html"))
        }
    }
}

/// Headers on every page: a policy that allows only this origin's
/// stylesheet and images, and no script, framing or foreign form target.
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn favicon() -> Response {
    asset("image/svg+xml", FAVICON)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// A page that could not be shown, as an HTML page with its status.
#[derive(Debug)]
pub enum WebError {
    /// 404: no such page or check.
    NotFound,
    /// 403: a form without this session's CSRF token, or from another site.
    Forbidden(&'static str),
    /// 400: a form that could not be read.
    BadRequest(String),
    /// 429: too many sign-in attempts, or status page loads.
    TooMany,
    /// 503: a backing service is down.
    Unavailable(String),
    /// 500: anything else (logged, not shown).
    Internal(String),
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => WebError::NotFound,
            e if e.is_unavailable() => WebError::Unavailable(e.to_string()),
            e => WebError::Internal(e.to_string()),
        }
    }
}

impl From<askama::Error> for WebError {
    fn from(e: askama::Error) -> Self {
        WebError::Internal(format!("template: {e}"))
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            WebError::NotFound => (StatusCode::NOT_FOUND, "There is no such page.".to_string()),
            WebError::Forbidden(why) => (StatusCode::FORBIDDEN, why.to_string()),
            WebError::BadRequest(why) => (StatusCode::BAD_REQUEST, why),
            WebError::TooMany => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests: wait a few seconds and try again.".to_string(),
            ),
            WebError::Unavailable(cause) => {
                tracing::warn!(%cause, "dependency unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "A backing service is unavailable; try again shortly.".to_string(),
                )
            }
            WebError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong on our side.".to_string(),
                )
            }
        };
        let page = pages::ErrorPage {
            chrome: pages::Chrome::public(),
            status: status.as_u16(),
            message,
        };
        let mut resp = match askama::Template::render(&page) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, page.message).into_response(),
        };
        if status == StatusCode::TOO_MANY_REQUESTS {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

/// A rendered template as a response.
fn html(t: &impl askama::Template) -> Result<Response, WebError> {
    Ok(Html(t.render()?).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str, headers: &[(&str, &str)]) -> Request {
        let mut b = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn browsers_get_the_check_page_and_api_clients_get_json() {
        let html = [("accept", "text/html,application/xhtml+xml,*/*;q=0.8")];
        assert!(is_page(&req("GET", "/checks/abc", &html)));
        assert!(!is_page(&req("GET", "/checks/abc", &[("accept", "*/*")])));
        assert!(!is_page(&req("GET", "/checks/abc", &[])));
        let keyed = [html[0], ("authorization", "Bearer k")];
        assert!(!is_page(&req("GET", "/checks/abc", &keyed)));
        assert!(!is_page(&req("PATCH", "/checks/abc", &html)));
        assert!(!is_page(&req("DELETE", "/checks/abc", &html)));
    }

    #[test]
    fn the_pages_own_paths_go_to_the_pages_and_the_rest_to_the_api() {
        for p in [
            "/",
            "/status",
            "/login",
            "/logout",
            "/checks/new",
            "/assets/pulse.css",
        ] {
            assert!(is_page(&req("GET", p, &[])), "{p}");
        }
        for p in [
            "/checks/x/edit",
            "/checks/x/pause",
            "/checks/x/resume",
            "/checks/x/delete",
        ] {
            assert!(is_page(&req("POST", p, &[])), "{p}");
        }
        for p in [
            "/checks",
            "/checks/x/runs",
            "/checks/x/alerts",
            "/health",
            "/ready",
            "/metrics",
        ] {
            assert!(!is_page(&req("GET", p, &[("accept", "text/html")])), "{p}");
        }
        assert!(!is_page(&req("POST", "/checks", &[])));
    }
}
