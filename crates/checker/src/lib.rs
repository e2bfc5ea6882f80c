//! HTTP check execution, and the guarded reqwest client webhooks use.
//!
//! Checks run on [`engine`], which owns each connection so a run records
//! its phases and the server's certificate. No connection is reused between
//! runs: a pooled keep-alive connection could hide a dead listener, and
//! real monitors measure a fresh connect each time. `timeout_ms` bounds the whole run, body included; redirects are
//! followed up to 10 hops. The body is read up to `RESPONSE_BODY_LIMIT`
//! bytes and no further, whatever the check: a longer (or endless) body is
//! not an error, the run is judged on its first bytes. The target policy
//! (`TARGET_POLICY`) is enforced on every address connected to, and proxy
//! variables (`HTTP_PROXY` and friends) are ignored: a proxy would connect
//! on our behalf to addresses the policy never sees.

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use pulse_core::policy::TargetPolicy;
use pulse_core::{FailureReason, RunOutcome};
use rustls::pki_types::CertificateDer;

pub mod engine;
pub mod judge;
mod probes;
mod tls;

pub use engine::{Engine, FetchError, Stopwatch};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Redirect hops followed before a run counts as an error.
pub const MAX_REDIRECTS: usize = 10;
/// Default cap on the response body read for `body_contains`.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// One request to make, borrowed from the check.
pub struct Probe<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: &'a BTreeMap<String, String>,
    pub body: Option<&'a str>,
    pub timeout: Duration,
    /// What the response must satisfy.
    pub expect: pulse_core::run::Expectations<'a>,
    /// Verify the server's certificate (`tls_verify`); it is recorded
    /// either way.
    pub verify_tls: bool,
    /// HTTP (`method`, `url`... above), or a TCP or DNS check.
    pub kind: ProbeKind<'a>,
}

/// What a probe checks beyond HTTP.
#[derive(Debug, Clone, Copy)]
pub enum ProbeKind<'a> {
    Http,
    Tcp {
        host: &'a str,
        port: u16,
        tls: bool,
        send: Option<&'a str>,
        expect: Option<&'a str>,
    },
    Dns {
        host: &'a str,
        record_type: pulse_core::check::RecordType,
        resolver: Option<&'a str>,
    },
}

/// Root certificates trusted beside the system store and the built-in
/// webpki roots: `EXTRA_CA_FILE`, for intranet targets signed by an
/// internal CA.
#[derive(Clone, Default)]
pub struct ExtraRoots(Vec<CertificateDer<'static>>);

/// Why `EXTRA_CA_FILE` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not PEM certificates: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: no PEM certificate in it")]
    Empty { path: String },
}

impl fmt::Debug for ExtraRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExtraRoots({} certificates)", self.0.len())
    }
}

impl ExtraRoots {
    /// Every certificate of a PEM file (one or more `CERTIFICATE` blocks).
    pub fn from_pem_file(path: &std::path::Path) -> Result<ExtraRoots, CaFileError> {
        use rustls::pki_types::pem::PemObject;
        let name = || path.display().to_string();
        let pem = std::fs::read(path).map_err(|source| CaFileError::Read {
            path: name(),
            source,
        })?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CaFileError::Parse {
                path: name(),
                message: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(CaFileError::Empty { path: name() });
        }
        Ok(ExtraRoots(certs))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds these roots to a (webhook) client builder.
    pub fn trust_in(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        self.0.iter().fold(builder, |b, der| {
            match reqwest::Certificate::from_der(der.as_ref()) {
                Ok(cert) => b.add_root_certificate(cert),
                Err(_) => b,
            }
        })
    }
}

/// Runs checks: one per worker, cheap to clone.
#[derive(Clone)]
pub struct Checker {
    engine: Engine,
}

/// A connection the target policy refuses: the error the resolver and the
/// redirect policy give, found again in a reqwest error's causes by
/// [`is_blocked`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked(pub String);

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Blocked {}

/// Whether the target policy refused the connection behind `e`.
pub fn is_blocked(e: &(dyn Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<Blocked>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// A reqwest client builder that enforces `policy` on every address it
/// connects to: names through a resolver that drops refused addresses,
/// IP literals on every redirect hop (and, by the caller, on the first URL).
/// It never uses a proxy, whatever the environment says.
pub fn guarded_client(policy: TargetPolicy, max_redirects: usize) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(PolicyResolver(policy)))
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > max_redirects {
                attempt.error(format!("more than {max_redirects} redirects"))
            } else if let Some(why) = policy.blocks_url(attempt.url()) {
                attempt.error(Blocked(why))
            } else {
                attempt.follow()
            }
        }))
}

/// The addresses `host` resolved to that `policy` allows. When none is
/// left: why the last was refused, or `None` when there were none at all.
pub(crate) fn allowed(
    policy: TargetPolicy,
    host: &str,
    addrs: Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, Option<Blocked>> {
    let mut refused = None;
    let allowed: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| {
            // A reqwest resolver's addresses carry no port (0) yet.
            let why = if a.port() != 0 && pulse_core::policy::is_own_service(*a) {
                format!("blocked: {host} resolves to {a}, one of Pulse's own services")
            } else if let Some(why) = policy.blocks(a.ip()) {
                format!(
                    "blocked by target policy: {host} resolves to {} ({why})",
                    a.ip()
                )
            } else {
                return true;
            };
            refused = Some(Blocked(why));
            false
        })
        .collect();
    if allowed.is_empty() {
        Err(refused)
    } else {
        Ok(allowed)
    }
}

/// Resolves names with the system resolver, keeping only the addresses the
/// policy allows; if none is left, resolution fails with the reason.
struct PolicyResolver(TargetPolicy);

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            match allowed(policy, &host, addrs) {
                Ok(allowed) => {
                    let addrs: Addrs = Box::new(allowed.into_iter());
                    Ok(addrs)
                }
                Err(Some(blocked)) => Err(blocked.into()),
                Err(None) => Err(format!("{host} has no address").into()),
            }
        })
    }
}

impl Checker {
    /// A checker reading bodies up to `body_limit` bytes, connecting where
    /// `policy` allows, trusting `roots` beside the system and webpki roots.
    pub fn new(
        body_limit: usize,
        policy: TargetPolicy,
        roots: &ExtraRoots,
    ) -> Result<Checker, rustls::Error> {
        Ok(Checker {
            engine: Engine {
                policy,
                webpki: tls::webpki(&roots.0)?,
                body_limit,
                source: None,
            },
        })
    }

    /// Outgoing connections bind to `source` (`WORKER_SOURCE_ADDRESS`).
    pub fn with_source(mut self, source: Option<std::net::IpAddr>) -> Checker {
        self.engine.source = source;
        self
    }

    /// Makes the request and judges the answer. Never fails: whatever goes
    /// wrong with the target is part of the outcome, with where the time
    /// went.
    pub async fn run(&self, probe: &Probe<'_>) -> RunOutcome {
        match probe.kind {
            ProbeKind::Http => self.run_http(probe).await,
            ProbeKind::Tcp { .. } | ProbeKind::Dns { .. } => self.run_other(probe).await,
        }
    }

    /// A TCP or DNS check: the answer is judged like a response whose body
    /// is the received text (TCP) or the answers, one per line (DNS).
    async fn run_other(&self, probe: &Probe<'_>) -> RunOutcome {
        let started_at = Utc::now();
        let watch = Stopwatch::start();
        let attempt = tokio::time::timeout(probe.timeout, async {
            match probe.kind {
                ProbeKind::Tcp {
                    host,
                    port,
                    tls,
                    send,
                    expect,
                } => self
                    .engine
                    .tcp(host, port, tls, probe.verify_tls, send, expect, &watch)
                    .await
                    .map(|a| {
                        let missing = (!a.found).then(|| {
                            format!(
                                "received text does not contain {:?}",
                                expect.unwrap_or_default()
                            )
                        });
                        (0u16, Vec::new(), a.received, missing, a.certificate)
                    }),
                ProbeKind::Dns {
                    host,
                    record_type,
                    resolver,
                } => self
                    .engine
                    .dns(host, record_type, resolver, probe.timeout, &watch)
                    .await
                    .map(|a| {
                        let rcode = rcode_name(a.rcode);
                        // Without assertions, a DNS check wants answers.
                        let missing = probe.expect.assertions.is_empty().then(|| {
                            if a.rcode != hickory_resolver::proto::op::ResponseCode::NoError {
                                Some(format!("{host}: {rcode}"))
                            } else if a.answers.is_empty() {
                                Some(format!("{host}: no {} records", record_type.as_str()))
                            } else {
                                None
                            }
                        });
                        let mut pairs = vec![("rcode".to_string(), rcode)];
                        if !a.cnames.is_empty() {
                            // The aliases followed, readable by a header assertion.
                            pairs.push(("cname".to_string(), a.cnames.join(" ")));
                        }
                        (
                            u16::from(a.rcode),
                            pairs,
                            a.answers.join("\n").into_bytes(),
                            missing.flatten(),
                            None,
                        )
                    }),
                ProbeKind::Http => unreachable!("HTTP runs take run_http"),
            }
        })
        .await;
        let phases = watch.phases();
        let latency_ms = phases.total_ms();
        let mut outcome = match attempt {
            Err(_) => RunOutcome::failed(
                started_at,
                latency_ms,
                FailureReason::Timeout,
                format!("no answer within {} ms", probe.timeout.as_millis()),
            ),
            Ok(Err(e)) => Self::fetch_failed(started_at, latency_ms, e),
            Ok(Ok((status, headers, body, missing, certificate))) => {
                let answer = judge::Answer {
                    status,
                    headers,
                    body,
                    latency_ms,
                };
                let (mut outcome, _) =
                    judge::judge(started_at, answer, &probe.expect, judge::JUDGE_BUDGET).await;
                if let Some(why) = missing.filter(|_| outcome.status.is_up()) {
                    let reason = if matches!(probe.kind, ProbeKind::Dns { .. }) {
                        FailureReason::Dns
                    } else {
                        FailureReason::BodyMismatch
                    };
                    outcome.status = reason.status();
                    outcome.failure_reason = Some(reason);
                    outcome.error = Some(why);
                }
                outcome.status_code = None;
                outcome.certificate = certificate;
                outcome
            }
        };
        outcome.phases = Some(phases);
        outcome
    }

    fn fetch_failed(
        started_at: chrono::DateTime<Utc>,
        latency_ms: u32,
        e: FetchError,
    ) -> RunOutcome {
        let mut certificate = None;
        let (reason, text) = match e {
            FetchError::Blocked(t) => (FailureReason::Blocked, t),
            FetchError::Dns(t) => (FailureReason::Dns, t),
            FetchError::Connect(t) => (FailureReason::Connect, t),
            FetchError::Tls(t, cert) => {
                certificate = cert.map(|c| *c);
                (FailureReason::Tls, t)
            }
            FetchError::Request(t) => (FailureReason::Request, t),
        };
        let mut outcome = RunOutcome::failed(
            started_at,
            latency_ms,
            reason,
            pulse_core::redact::redact_text(&text),
        );
        // The certificate that was refused is what the user needs to see.
        outcome.certificate = certificate;
        outcome
    }

    async fn run_http(&self, probe: &Probe<'_>) -> RunOutcome {
        let started_at = Utc::now();
        let watch = Stopwatch::start();
        let keep_body = if probe.expect.needs_body() {
            self.engine.body_limit
        } else {
            pulse_core::run::EXCERPT_BODY_BYTES
        };
        let request = engine::Request {
            method: probe.method,
            url: probe.url,
            headers: probe.headers,
            body: probe.body,
            verify_tls: probe.verify_tls,
            keep_body,
        };
        let attempt =
            tokio::time::timeout(probe.timeout, self.engine.fetch(&request, &watch)).await;
        let phases = watch.phases();
        let latency_ms = phases.total_ms();
        let mut outcome = match attempt {
            Err(_) => RunOutcome::failed(
                started_at,
                latency_ms,
                FailureReason::Timeout,
                format!(
                    "no complete response within {} ms",
                    probe.timeout.as_millis()
                ),
            ),
            Ok(Err(e)) => Self::fetch_failed(started_at, latency_ms, e),
            Ok(Ok(answer)) => {
                let certificate = answer.certificate;
                let reason = answer.reason;
                let judged = judge::Answer {
                    status: answer.status,
                    headers: answer.headers,
                    body: answer.body,
                    latency_ms,
                };
                let (mut outcome, judged) =
                    judge::judge(started_at, judged, &probe.expect, judge::JUDGE_BUDGET).await;
                // A response judged over budget is not handed back.
                if !outcome.status.is_up() && judged.status != 0 {
                    outcome.excerpt = Some(pulse_core::run::excerpt(
                        judged.status,
                        &reason,
                        &judged.headers,
                        &judged.body,
                    ));
                }
                outcome.certificate = certificate;
                outcome
            }
        };
        outcome.phases = Some(phases);
        outcome
    }
}

/// A DNS response code as DNS tools print it: `NOERROR`, `NXDOMAIN`...
fn rcode_name(code: hickory_resolver::proto::op::ResponseCode) -> String {
    use hickory_resolver::proto::op::ResponseCode as R;
    match code {
        R::NoError => "NOERROR".into(),
        R::FormErr => "FORMERR".into(),
        R::ServFail => "SERVFAIL".into(),
        R::NXDomain => "NXDOMAIN".into(),
        R::NotImp => "NOTIMP".into(),
        R::Refused => "REFUSED".into(),
        other => format!("RCODE{}", u16::from(other)),
    }
}

/// An error and its causes, joined by ": ", URL userinfo redacted.
pub(crate) fn redact_chain(e: &(dyn Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    pulse_core::redact::redact_text(&text)
}

/// An error and all its causes, joined by ": ", with the userinfo of any
/// URL in them (reqwest names the URL) replaced by `***`.
pub fn error_chain(e: &reqwest::Error) -> String {
    redact_chain(e)
}
