//! Test helpers. Every test gets its own namespace in the real services the
//! project's script started (`scripts/with-services.sh`, run by `make
//! test`): a fresh Postgres database, a Redis key prefix and a ClickHouse
//! database. Plus local HTTP servers: a target to monitor and a webhook
//! receiver, both on loopback.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{any, post};
use axum::Router;
use sqlx::Connection;

fn service_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with `make test`, which starts Postgres, Redis and ClickHouse")
    })
}

/// One test's private slice of the services.
#[derive(Debug, Clone)]
pub struct TestEnv {
    pub database_url: String,
    pub redis_url: String,
    pub redis_prefix: String,
    pub clickhouse_dsn: String,
}

impl TestEnv {
    pub async fn new() -> TestEnv {
        let admin = service_env("PULSE_TEST_DATABASE_URL");
        let redis_url = service_env("PULSE_TEST_REDIS_URL");
        let clickhouse = service_env("PULSE_TEST_CLICKHOUSE_URL");
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("connect to test postgres");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let mut url = url::Url::parse(&admin).expect("postgres url");
        url.set_path(&name);
        TestEnv {
            database_url: url.to_string(),
            redis_url,
            redis_prefix: format!("pulse-test:{name}"),
            clickhouse_dsn: format!("{}/{name}", clickhouse.trim_end_matches('/')),
        }
    }
}

/// Polls `cond` every 50 ms until it holds or `limit` passes; panics with
/// `what` on timeout.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if cond().await {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One request's time on `/work/NAME`, closed when dropped.
struct Span {
    state: Arc<TargetState>,
    name: String,
    start: Instant,
}

impl Span {
    fn open(state: Arc<TargetState>, name: String) -> Span {
        Span {
            state,
            name,
            start: Instant::now(),
        }
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        let end = Instant::now();
        if let Ok(mut spans) = self.state.spans.lock() {
            spans
                .entry(std::mem::take(&mut self.name))
                .or_default()
                .push((self.start, end));
        }
    }
}

#[derive(Default)]
struct TargetState {
    spans: Mutex<HashMap<String, Vec<(Instant, Instant)>>>,
    hits: Mutex<HashMap<String, Vec<Instant>>>,
    toggle: AtomicU16,
    peers: Mutex<Vec<SocketAddr>>,
}

/// A local site to monitor:
/// - `/ok`: 200 with body "all systems healthy";
/// - `/fail`: 500;
/// - `/slow?ms=N`: waits N ms, then 200;
/// - `/toggle`: answers the status set with [`Target::set_toggle`] (200 at
///   first);
/// - `/status/N`: answers status N;
/// - `/hit/NAME`: 200, counted under its own name;
/// - `/work/NAME?ms=N`: 200 after N ms (300 by default), counted, and its
///   time span kept to detect overlapping executions;
/// - `/redirect/N`: a chain of N redirects ending in 200;
/// - `/redirect-to?to=URL`: a redirect to URL;
/// - `/flaky/NAME?fail=N`: 500 for the first N requests, then 200;
/// - `/expect`: 200 only for a POST with header `x-pulse-test: yes` and
///   body `ping`, else 400;
/// - `/peer`: 200, noting the client's address (one per connection).
/// - `/deny/{ips}`: 503 to clients from one of these comma-separated IP
///   addresses, 200 to others (tells locations apart by source address).
///
/// Every request is counted per path.
#[derive(Clone)]
pub struct Target {
    addr: SocketAddr,
    state: Arc<TargetState>,
}

#[derive(serde::Deserialize)]
struct SlowQuery {
    ms: Option<u64>,
}

impl Target {
    pub async fn start() -> Target {
        let state = Arc::new(TargetState::default());
        state.toggle.store(200, Ordering::SeqCst);
        let record = |state: &TargetState, path: &str| {
            state
                .hits
                .lock()
                .unwrap()
                .entry(path.to_string())
                .or_default()
                .push(Instant::now());
        };
        let app = Router::new()
            .route(
                "/ok",
                any(move |State(s): State<Arc<TargetState>>| async move {
                    record(&s, "/ok");
                    (StatusCode::OK, "all systems healthy")
                }),
            )
            .route(
                "/fail",
                any(move |State(s): State<Arc<TargetState>>| async move {
                    record(&s, "/fail");
                    (StatusCode::INTERNAL_SERVER_ERROR, "boom")
                }),
            )
            .route(
                "/slow",
                any(
                    move |State(s): State<Arc<TargetState>>, Query(q): Query<SlowQuery>| async move {
                        record(&s, "/slow");
                        tokio::time::sleep(Duration::from_millis(q.ms.unwrap_or(5_000))).await;
                        (StatusCode::OK, "finally")
                    },
                ),
            )
            .route(
                "/toggle",
                any(move |State(s): State<Arc<TargetState>>| async move {
                    record(&s, "/toggle");
                    let code = s.toggle.load(Ordering::SeqCst);
                    (StatusCode::from_u16(code).unwrap_or(StatusCode::OK), "toggle")
                }),
            )
            .route(
                "/status/{code}",
                any(
                    move |State(s): State<Arc<TargetState>>, Path(code): Path<u16>| async move {
                        record(&s, "/status");
                        (StatusCode::from_u16(code).unwrap_or(StatusCode::OK), "status")
                    },
                ),
            )
            .route(
                "/hit/{name}",
                any(
                    move |State(s): State<Arc<TargetState>>, Path(name): Path<String>| async move {
                        record(&s, &format!("/hit/{name}"));
                        (StatusCode::OK, "all systems healthy")
                    },
                ),
            )
            .route(
                "/redirect/{n}",
                any(
                    move |State(s): State<Arc<TargetState>>, Path(n): Path<u32>| async move {
                        record(&s, "/redirect");
                        if n == 0 {
                            (StatusCode::OK, [("location", String::new())], "arrived")
                        } else {
                            (
                                StatusCode::FOUND,
                                [("location", format!("/redirect/{}", n - 1))],
                                "moved",
                            )
                        }
                    },
                ),
            )
            .route(
                "/work/{name}",
                any(
                    move |State(s): State<Arc<TargetState>>,
                          Path(name): Path<String>,
                          Query(q): Query<SlowQuery>| async move {
                        record(&s, &format!("/work/{name}"));
                        // The interval ends when the response is sent or the
                        // client goes away (the handler is dropped).
                        let _span = Span::open(s.clone(), name);
                        tokio::time::sleep(Duration::from_millis(q.ms.unwrap_or(300))).await;
                        (StatusCode::OK, "all systems healthy")
                    },
                ),
            )
            .route(
                "/flaky/{name}",
                any(
                    move |State(s): State<Arc<TargetState>>,
                          Path(name): Path<String>,
                          Query(q): Query<HashMap<String, String>>| async move {
                        let path = format!("/flaky/{name}");
                        record(&s, &path);
                        let fail: usize = q.get("fail").and_then(|v| v.parse().ok()).unwrap_or(1);
                        let n = s.hits.lock().unwrap().get(&path).map_or(0, Vec::len);
                        if n <= fail {
                            (StatusCode::INTERNAL_SERVER_ERROR, "not yet")
                        } else {
                            (StatusCode::OK, "all systems healthy")
                        }
                    },
                ),
            )
            .route(
                "/json/{state}",
                any(
                    move |State(s): State<Arc<TargetState>>, Path(state): Path<String>| async move {
                        record(&s, "/json");
                        (
                            StatusCode::OK,
                            [("content-type", "application/json"), ("x-version", "7")],
                            format!(r#"{{"status": "{state}", "count": 3, "items": [1, 2, 3]}}"#),
                        )
                    },
                ),
            )
            .route(
                "/alternate/{name}",
                any(
                    move |State(s): State<Arc<TargetState>>, Path(name): Path<String>| async move {
                        // 500, 200, 500, 200... per name.
                        let path = format!("/alternate/{name}");
                        record(&s, &path);
                        let n = s.hits.lock().unwrap().get(&path).map_or(0, Vec::len);
                        if n % 2 == 1 {
                            (StatusCode::INTERNAL_SERVER_ERROR, "odd")
                        } else {
                            (StatusCode::OK, "all systems healthy")
                        }
                    },
                ),
            )
            .route(
                "/redirect-to",
                any(
                    move |State(s): State<Arc<TargetState>>,
                          Query(q): Query<HashMap<String, String>>| async move {
                        record(&s, "/redirect-to");
                        let to = q.get("to").cloned().unwrap_or_default();
                        (StatusCode::FOUND, [("location", to)], "moved")
                    },
                ),
            )
            .route(
                "/expect",
                any(
                    |method: axum::http::Method,
                     headers: axum::http::HeaderMap,
                     body: String| async move {
                        let ok = method == axum::http::Method::POST
                            && headers.get("x-pulse-test").is_some_and(|v| v == "yes")
                            && body == "ping";
                        if ok {
                            StatusCode::OK
                        } else {
                            StatusCode::BAD_REQUEST
                        }
                    },
                ),
            )
            .route(
                "/deny/{ips}",
                any(
                    move |State(s): State<Arc<TargetState>>,
                          Path(ips): Path<String>,
                          ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                        record(&s, "/deny");
                        s.peers.lock().unwrap().push(peer);
                        let ip = peer.ip().to_string();
                        if ips.split(',').any(|d| d == ip) {
                            (StatusCode::SERVICE_UNAVAILABLE, format!("{ip} is not welcome"))
                        } else {
                            (StatusCode::OK, format!("hello {ip}"))
                        }
                    },
                ),
            )
            .route(
                "/peer",
                any(
                    move |State(s): State<Arc<TargetState>>,
                          ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                        record(&s, "/peer");
                        s.peers.lock().unwrap().push(peer);
                        (StatusCode::OK, "peer noted")
                    },
                ),
            )
            .with_state(state.clone());
        let addr = serve(app).await;
        Target { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn hits(&self, path: &str) -> usize {
        self.hit_times(path).len()
    }

    pub fn hit_times(&self, path: &str) -> Vec<Instant> {
        self.state
            .hits
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    /// Pairs of requests to `/work/NAME` that were in progress at the same
    /// time (by the target's clock).
    pub fn overlaps(&self, name: &str) -> usize {
        let mut spans = self
            .state
            .spans
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .unwrap_or_default();
        spans.sort();
        spans.windows(2).filter(|w| w[1].0 < w[0].1).count()
    }

    /// Client addresses seen on `/peer`: a new port means a new connection.
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.state.peers.lock().unwrap().clone()
    }

    pub fn set_toggle(&self, code: u16) {
        self.state.toggle.store(code, Ordering::SeqCst);
    }
}

/// A request as the receiver saw it: headers (lowercase names) and raw body.
pub type RawRequest = (HashMap<String, String>, String);

/// A local webhook endpoint that records every request it receives (JSON
/// body and headers) and answers with a configurable status (204 at first),
/// or hangs without answering.
#[derive(Clone)]
pub struct Receiver {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<serde_json::Value>>>,
    raw: Arc<Mutex<Vec<RawRequest>>>,
    status: Arc<AtomicU16>,
    hang: Arc<std::sync::atomic::AtomicBool>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        Receiver::start_on(0).await
    }

    /// On a given loopback port (0 for any).
    pub async fn start_on(port: u16) -> Receiver {
        let received = Arc::new(Mutex::new(Vec::new()));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(204));
        let hang = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (r, w, s, h) = (received.clone(), raw.clone(), status.clone(), hang.clone());
        let app = Router::new().route(
            "/hook",
            post(
                move |headers: axum::http::HeaderMap, body: String| async move {
                    let headers: HashMap<String, String> = headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                        .collect();
                    w.lock().unwrap().push((headers, body.clone()));
                    if h.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    r.lock()
                        .unwrap()
                        .push(serde_json::from_str(&body).unwrap_or(serde_json::Value::Null));
                    StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap_or(StatusCode::OK)
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            addr,
            received,
            raw,
            status,
            hang,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// JSON bodies of requests answered (not those left hanging).
    pub fn received(&self) -> Vec<serde_json::Value> {
        self.received.lock().unwrap().clone()
    }

    /// Every request that arrived: headers (lowercase names) and raw body.
    pub fn requests(&self) -> Vec<RawRequest> {
        self.raw.lock().unwrap().clone()
    }

    pub fn set_status(&self, code: u16) {
        self.status.store(code, Ordering::SeqCst);
    }

    /// Hang every following request instead of answering.
    pub fn set_hang(&self, hang: bool) {
        self.hang.store(hang, Ordering::SeqCst);
    }
}

/// A free loopback port, for a server started later.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    addr
}

/// A private set of Postgres, Redis and ClickHouse for one fault test, so it
/// can stop and restart a service without touching other tests. Started with
/// the project's own `scripts/services.sh`; stopped and removed on drop.
pub struct PrivateServices {
    dir: std::path::PathBuf,
    pub env: TestEnv,
}

fn services_script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/services.sh")
}

fn run_script(args: &[&str]) {
    let status = std::process::Command::new(services_script())
        .args(args)
        .status()
        .expect("run scripts/services.sh");
    assert!(status.success(), "services.sh {args:?} failed");
}

impl PrivateServices {
    pub fn start() -> PrivateServices {
        let dir =
            std::env::temp_dir().join(format!("pulse-private-{}", uuid::Uuid::new_v4().simple()));
        run_script(&["start", dir.to_str().unwrap()]);
        let vars: HashMap<String, String> = std::fs::read_to_string(dir.join("env"))
            .expect("services env")
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = TestEnv {
            database_url: vars["DATABASE_URL"].clone(),
            redis_url: vars["REDIS_URL"].clone(),
            redis_prefix: "pulse".into(),
            clickhouse_dsn: vars["CLICKHOUSE_DSN"].clone(),
        };
        PrivateServices { dir, env }
    }

    /// Stops one service: `pg`, `redis` or `ch`.
    pub fn stop(&self, service: &str) {
        run_script(&["stop-one", self.dir.to_str().unwrap(), service]);
    }

    /// Starts it again, on the same port with the same data (Redis comes
    /// back empty).
    pub fn start_again(&self, service: &str) {
        run_script(&["start-one", self.dir.to_str().unwrap(), service]);
    }
}

impl Drop for PrivateServices {
    fn drop(&mut self) {
        let _ = std::process::Command::new(services_script())
            .args(["stop", self.dir.to_str().unwrap()])
            .status();
    }
}

/// An HTTP client that sends `Authorization: Bearer <key>` on every request.
pub fn keyed_client(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {key}").parse().expect("a header-safe key"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("http client")
}

/// The environment variables table of `docs/configuration.md`: each
/// variable with the binaries that read it (`server`, `worker` or `both`).
pub fn docs_variables() -> Vec<(String, String)> {
    let docs = include_str!("../../../docs/configuration.md");
    let section = docs
        .split("## Environment variables")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .unwrap_or_default();
    section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((name.to_string(), cells.get(2)?.to_string()))
        })
        .collect()
}

/// The environment variables a binary's `--help` lists (`[env: NAME=...]`).
pub fn help_variables(binary: &str) -> Vec<String> {
    let out = std::process::Command::new(binary)
        .arg("--help")
        .env_clear()
        .output()
        .expect("run --help");
    assert!(out.status.success(), "--help failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("Usage:"), "{text}");
    text.split("[env: ")
        .skip(1)
        .filter_map(|rest| {
            let end = rest.find(['=', ']'])?;
            Some(rest[..end].to_string())
        })
        .collect()
}

/// Checks that `--help` of `binary` (named `who`: server or worker) and the
/// environment variables table of `docs/configuration.md` list the same
/// variables, and that `.env.example` names each of them.
pub fn assert_help_matches_docs(binary: &str, who: &str) {
    let mut help = help_variables(binary);
    help.sort();
    help.dedup();
    let mut documented: Vec<String> = docs_variables()
        .into_iter()
        .filter(|(_, used_by)| used_by == who || used_by == "both")
        .map(|(name, _)| name)
        .filter(|name| name != "RUST_LOG") // read by the log filter, not a setting
        .collect();
    documented.sort();
    assert_eq!(
        help, documented,
        "{who}: --help and the variables table of docs/configuration.md differ"
    );
    let example = include_str!("../../../.env.example");
    for name in &help {
        assert!(
            example.contains(&format!("{name}=")),
            ".env.example does not list {name}"
        );
    }
}

/// An HTTPS target on loopback with a self-signed certificate for
/// `localhost` that expires `days` days from now; answers 200 "ok".
pub struct TlsTarget {
    pub port: u16,
}

impl TlsTarget {
    pub async fn start(days: i64) -> TlsTarget {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "expiring.test");
        let end = chrono::Utc::now() + chrono::Duration::days(days);
        let date = |d: chrono::DateTime<chrono::Utc>| {
            use chrono::Datelike;
            rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
        };
        params.not_before = date(chrono::Utc::now() - chrono::Duration::days(30));
        params.not_after = date(end);
        let cert = params.self_signed(&key).unwrap();
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(conn).await else {
                        return;
                    };
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        TlsTarget { port }
    }

    pub fn url(&self) -> String {
        format!("https://localhost:{}/", self.port)
    }
}
