//! The HTTP engine checks run on: it owns each connection (resolve, TCP
//! connect, TLS handshake, then hyper's HTTP/1.1 client connection), so a
//! run knows where its time went (DNS, connect, TLS, first byte, download)
//! and what certificate the server showed. A fresh connection per run; the
//! target policy is applied to every address connected to, on every
//! redirect hop. (Webhooks go through reqwest: they need no phases.)

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use pulse_core::policy::TargetPolicy;
use pulse_core::run::{Certificate, Phases};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::tls;

/// Redirect hops followed before a run counts as an error.
pub const MAX_REDIRECTS: usize = 10;

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The target policy refuses the address (or every address of a name).
    Blocked(String),
    Dns(String),
    Connect(String),
    /// The handshake failed; the certificate the server showed, when it
    /// showed one (an expired or misnamed one is recorded too).
    Tls(String, Option<Box<Certificate>>),
    /// Anything else: a bad URL or redirect, a broken HTTP exchange.
    Request(String),
}

/// One request to make.
pub struct Request<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: &'a BTreeMap<String, String>,
    pub body: Option<&'a str>,
    /// Verify the server's certificate (it is recorded either way).
    pub verify_tls: bool,
    /// Body bytes to keep (the rest, up to the read cap, is read and
    /// dropped).
    pub keep_body: usize,
}

/// A response as read: status, headers, the body up to the cap, and the
/// last certificate seen.
pub struct Answer {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub certificate: Option<Certificate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Dns = 0,
    Connect = 1,
    Tls = 2,
    Ttfb = 3,
    Download = 4,
}

/// Time by phase, shared with the caller so that a run cut off by its
/// timeout still knows where its time went.
#[derive(Clone)]
pub struct Stopwatch(Arc<Mutex<Watch>>);

struct Watch {
    origin: Instant,
    last: Duration,
    current: Phase,
    micros: [u64; 5],
}

impl Default for Stopwatch {
    fn default() -> Self {
        Stopwatch::start()
    }
}

impl Stopwatch {
    pub fn start() -> Stopwatch {
        Stopwatch(Arc::new(Mutex::new(Watch {
            origin: Instant::now(),
            last: Duration::ZERO,
            current: Phase::Dns,
            micros: [0; 5],
        })))
    }

    pub(crate) fn enter(&self, phase: Phase) {
        if let Ok(mut w) = self.0.lock() {
            let now = w.origin.elapsed();
            let spent = (now - w.last).as_micros() as u64;
            let current = w.current as usize;
            w.micros[current] += spent;
            w.last = now;
            w.current = phase;
        }
    }

    /// The phases so far (the one in progress counts up to now), in whole
    /// milliseconds that add up exactly to the rounded total.
    pub fn phases(&self) -> Phases {
        let current = self.0.lock().map(|w| w.current).unwrap_or(Phase::Dns);
        self.enter(current);
        let micros = self.0.lock().map(|w| w.micros).unwrap_or_default();
        let total_ms = (micros.iter().sum::<u64>() + 500) / 1000;
        let mut ms: Vec<u64> = micros.iter().map(|m| (m + 500) / 1000).collect();
        let sum: u64 = ms.iter().sum();
        // Rounding each phase can miss the total by a few ms: the largest
        // phase takes the difference.
        if let Some((i, _)) = ms.iter().enumerate().max_by_key(|(_, v)| **v) {
            ms[i] = (ms[i] + total_ms).saturating_sub(sum);
        }
        let ms = |i: usize| ms[i].min(u64::from(u32::MAX)) as u32;
        Phases {
            dns_ms: ms(0),
            connect_ms: ms(1),
            tls_ms: ms(2),
            ttfb_ms: ms(3),
            download_ms: ms(4),
        }
    }
}

pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Aborts the connection task when the run is over or dropped.
struct Abort(tokio::task::JoinHandle<()>);

impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Clone)]
pub struct Engine {
    pub policy: TargetPolicy,
    /// The web PKI verifier over the trusted roots, built once: each
    /// handshake wraps it to record what the server presents.
    pub webpki: Arc<rustls::client::WebPkiServerVerifier>,
    /// Most body bytes read.
    pub body_limit: usize,
    /// The local address outgoing connections bind to
    /// (`WORKER_SOURCE_ADDRESS`), when set.
    pub source: Option<std::net::IpAddr>,
}

impl Engine {
    /// Makes the request, following redirects, timing each phase on `watch`.
    pub async fn fetch(&self, req: &Request<'_>, watch: &Stopwatch) -> Result<Answer, FetchError> {
        let mut url =
            url::Url::parse(req.url).map_err(|e| FetchError::Request(format!("bad URL: {e}")))?;
        let mut method =
            http::Method::from_bytes(req.method.as_bytes()).unwrap_or(http::Method::GET);
        let mut body = req.body.map(|b| Bytes::copy_from_slice(b.as_bytes()));
        let mut headers = req.headers.clone();
        let mut certificate = None;
        for _hop in 0..=MAX_REDIRECTS {
            watch.enter(Phase::Dns);
            let addrs = self.resolve(&url).await?;
            watch.enter(Phase::Connect);
            let tcp = self.connect(&addrs).await?;
            let host = url.host_str().unwrap_or_default().to_string();
            let io: Box<dyn Stream> = if url.scheme() == "https" {
                watch.enter(Phase::Tls);
                let (stream, cert) = self.handshake(tcp, &host, req.verify_tls).await?;
                certificate = cert.or(certificate);
                stream
            } else {
                Box::new(tcp)
            };
            watch.enter(Phase::Ttfb);
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
                .await
                .map_err(|e| FetchError::Request(format!("HTTP handshake: {e}")))?;
            let _conn = Abort(tokio::spawn(async move {
                let _ = conn.await;
            }));
            let request = build(&url, &method, &headers, body.clone())?;
            let resp = sender
                .send_request(request)
                .await
                .map_err(|e| FetchError::Request(crate::redact_chain(&e)))?;
            watch.enter(Phase::Download);
            let status = resp.status();
            if status.is_redirection() {
                if let Some(next) = resp
                    .headers()
                    .get(http::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .filter(|l| !l.is_empty())
                {
                    let next = url
                        .join(next)
                        .map_err(|e| FetchError::Request(format!("bad redirect location: {e}")))?;
                    if !matches!(next.scheme(), "http" | "https") {
                        return Err(FetchError::Request(format!(
                            "redirect to a {} URL",
                            next.scheme()
                        )));
                    }
                    if next.host_str() != url.host_str() {
                        // Credentials stay with the host they were meant for.
                        headers.retain(|k, _| {
                            !["authorization", "cookie", "proxy-authorization"]
                                .contains(&k.to_ascii_lowercase().as_str())
                        });
                    }
                    let see_other =
                        status == http::StatusCode::SEE_OTHER && method != http::Method::HEAD;
                    let post_moved =
                        matches!(status.as_u16(), 301 | 302) && method == http::Method::POST;
                    if see_other || post_moved {
                        method = http::Method::GET;
                        body = None;
                    }
                    url = next;
                    continue;
                }
            }
            let reason = status.canonical_reason().unwrap_or_default().to_string();
            let headers = resp
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let body = self.read_body(resp.into_body(), req.keep_body).await?;
            return Ok(Answer {
                status: status.as_u16(),
                reason,
                headers,
                body,
                certificate,
            });
        }
        Err(FetchError::Request(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }

    /// The addresses of the URL's host that the policy allows.
    async fn resolve(&self, url: &url::Url) -> Result<Vec<SocketAddr>, FetchError> {
        let port = url.port_or_known_default().unwrap_or(80);
        match url.host() {
            Some(url::Host::Ipv4(v4)) => self.resolve_ip(std::net::IpAddr::V4(v4), port),
            Some(url::Host::Ipv6(v6)) => self.resolve_ip(std::net::IpAddr::V6(v6), port),
            Some(url::Host::Domain(d)) => self.resolve_host(d, port).await,
            None => Err(FetchError::Request("the URL names no host".into())),
        }
    }

    fn resolve_ip(&self, ip: std::net::IpAddr, port: u16) -> Result<Vec<SocketAddr>, FetchError> {
        let addr = SocketAddr::new(ip, port);
        if let Some(why) = self.policy.blocks_socket(addr) {
            return Err(FetchError::Blocked(why));
        }
        Ok(vec![addr])
    }

    /// The addresses of `host` (a name or an IP literal) that the policy
    /// allows.
    pub(crate) async fn resolve_host(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, FetchError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let ip = bare.parse::<std::net::IpAddr>().ok();
        if let Some(ip) = ip {
            return self.resolve_ip(ip, port);
        }
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| {
                FetchError::Dns(format!("dns error: failed to lookup address {host}: {e}"))
            })?
            .collect();
        crate::allowed(self.policy, host, found).map_err(|refused| match refused {
            Some(blocked) => FetchError::Blocked(blocked.0),
            None => FetchError::Dns(format!("dns error: {host} has no address")),
        })
    }

    pub(crate) async fn handshake(
        &self,
        tcp: TcpStream,
        host: &str,
        verify: bool,
    ) -> Result<(Box<dyn Stream>, Option<Certificate>), FetchError> {
        let tls_err = |e: rustls::Error| FetchError::Tls(format!("TLS setup: {e}"), None);
        let verifier = Arc::new(tls::Recording::new(self.webpki.clone(), verify));
        let presented = verifier.presented.clone();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
        // A full handshake every run: no session to resume.
        config.resumption = rustls::client::Resumption::disabled();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = ServerName::try_from(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        )
        .map_err(|e| FetchError::Tls(format!("bad server name {host:?}: {e}"), None))?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let now = chrono::Utc::now();
        match connector.connect(name, tcp).await {
            Ok(stream) => {
                let chain = presented.lock().map(|p| p.clone()).unwrap_or_default();
                Ok((Box::new(stream), tls::describe(&chain, now)))
            }
            Err(e) => {
                let chain = presented.lock().map(|p| p.clone()).unwrap_or_default();
                let text = match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    Some(rustls_error) => tls::explain(rustls_error, &chain),
                    None => format!("TLS handshake failed: {e}"),
                };
                Err(FetchError::Tls(
                    text,
                    tls::describe(&chain, now).map(Box::new),
                ))
            }
        }
    }

    async fn read_body(
        &self,
        mut body: hyper::body::Incoming,
        keep: usize,
    ) -> Result<Vec<u8>, FetchError> {
        let keep = keep.min(self.body_limit);
        let mut kept = Vec::new();
        let mut read = 0usize;
        while read < self.body_limit {
            let Some(frame) = body.frame().await else {
                break;
            };
            let frame = frame.map_err(|e| FetchError::Request(format!("reading the body: {e}")))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let take = data.len().min(self.body_limit - read);
            let room = keep.saturating_sub(kept.len()).min(take);
            kept.extend_from_slice(&data[..room]);
            read += take;
        }
        Ok(kept)
    }
}

impl Engine {
    /// Connects to the first address that answers, from the source address
    /// when one is set (addresses of the other IP family are skipped).
    pub(crate) async fn connect(&self, addrs: &[SocketAddr]) -> Result<TcpStream, FetchError> {
        let mut last = None;
        for addr in addrs {
            let attempt = match self.source {
                None => TcpStream::connect(addr).await,
                Some(ip) if ip.is_ipv4() != addr.is_ipv4() => {
                    last = Some(format!(
                        "connect to {addr}: source address {ip} is of the other IP family"
                    ));
                    continue;
                }
                Some(ip) => bound_connect(ip, *addr).await,
            };
            match attempt {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = Some(format!("connect to {addr}: {e}")),
            }
        }
        Err(FetchError::Connect(
            last.unwrap_or_else(|| "no address to connect to".into()),
        ))
    }
}

/// A connection from `source` (any port) to `addr`.
async fn bound_connect(source: std::net::IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(addr).await
}

fn build(
    url: &url::Url,
    method: &http::Method,
    headers: &BTreeMap<String, String>,
    body: Option<Bytes>,
) -> Result<http::Request<Full<Bytes>>, FetchError> {
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => return Err(FetchError::Request("the URL names no host".into())),
    };
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let mut b = http::Request::builder()
        .method(method.clone())
        .uri(path)
        .header(http::header::HOST, host)
        .header(http::header::CONNECTION, "close");
    let has = |name: &str| headers.keys().any(|k| k.eq_ignore_ascii_case(name));
    if !has("user-agent") {
        b = b.header(
            http::header::USER_AGENT,
            concat!("pulse/", env!("CARGO_PKG_VERSION")),
        );
    }
    if !has("accept") {
        b = b.header(http::header::ACCEPT, "*/*");
    }
    if !url.username().is_empty() && !has("authorization") {
        // `user:password@` in the URL is HTTP Basic authentication.
        use base64::Engine as _;
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let pair = format!(
            "{}:{}",
            decode(url.username()),
            decode(url.password().unwrap_or_default())
        );
        b = b.header(
            http::header::AUTHORIZATION,
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            ),
        );
    }
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("host") || k.eq_ignore_ascii_case("connection") {
            continue;
        }
        b = b.header(k.as_str(), v.as_str());
    }
    b.body(Full::new(body.unwrap_or_default()))
        .map_err(|e| FetchError::Request(format!("bad request: {e}")))
}
