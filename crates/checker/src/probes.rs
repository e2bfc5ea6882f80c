//! TCP and DNS checks: a connection (optionally TLS) that may send a text
//! and expect one back, and a DNS query for one record type. Both time
//! their phases and obey the target policy like HTTP runs.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfig, Protocol, ResolverConfig, ResolverOpts};
use hickory_resolver::error::ResolveErrorKind;
use hickory_resolver::name_server::{GenericConnector, RuntimeProvider, TokioRuntimeProvider};
use hickory_resolver::proto::op::ResponseCode;
use pulse_core::check::RecordType;
use pulse_core::run::Certificate;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::engine::{Engine, FetchError, Phase, Stopwatch};

/// What a TCP check received.
pub struct TcpAnswer {
    pub received: Vec<u8>,
    /// Whether `expect` was found (true without one).
    pub found: bool,
    pub certificate: Option<Certificate>,
}

/// What a DNS query answered.
pub struct DnsAnswer {
    pub rcode: ResponseCode,
    /// One line per record: `1.2.3.4`, `10 mail.example.`, `"text"`.
    pub answers: Vec<String>,
    /// The CNAMEs followed to the answers, in order (none for a CNAME query).
    pub cnames: Vec<String>,
}

impl Engine {
    /// Connects to `host:port` (TLS when asked), sends `send`, and reads
    /// until `expect` shows up, the server closes, or the read cap.
    #[allow(clippy::too_many_arguments)]
    pub async fn tcp(
        &self,
        host: &str,
        port: u16,
        tls: bool,
        verify_tls: bool,
        send: Option<&str>,
        expect: Option<&str>,
        watch: &Stopwatch,
    ) -> Result<TcpAnswer, FetchError> {
        watch.enter(Phase::Dns);
        let addrs = self.resolve_host(host, port).await?;
        watch.enter(Phase::Connect);
        let tcp = self.connect(&addrs).await?;
        let (mut stream, certificate): (Box<dyn crate::engine::Stream>, _) = if tls {
            watch.enter(Phase::Tls);
            self.handshake(tcp, host, verify_tls).await?
        } else {
            (Box::new(tcp), None)
        };
        watch.enter(Phase::Ttfb);
        if let Some(text) = send {
            stream
                .write_all(text.as_bytes())
                .await
                .map_err(|e| FetchError::Request(format!("sending: {e}")))?;
            let _ = stream.flush().await;
        }
        let mut received = Vec::new();
        let wants = expect.filter(|e| !e.is_empty());
        if wants.is_none() && send.is_none() {
            // Only the connection (and handshake) is checked.
            return Ok(TcpAnswer {
                received,
                found: true,
                certificate,
            });
        }
        let mut buf = [0u8; 4096];
        let mut first = true;
        loop {
            let found =
                wants.is_some_and(|e| memchr::memmem::find(&received, e.as_bytes()).is_some());
            if found || received.len() >= self.body_limit {
                break;
            }
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| FetchError::Request(format!("reading: {e}")))?;
            if first {
                watch.enter(Phase::Download);
                first = false;
            }
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buf[..n]);
        }
        let found = wants.is_none_or(|e| memchr::memmem::find(&received, e.as_bytes()).is_some());
        Ok(TcpAnswer {
            received,
            found,
            certificate,
        })
    }

    /// Asks `resolver` (or the system's) for `name`'s `kind` records.
    pub async fn dns(
        &self,
        name: &str,
        kind: RecordType,
        resolver: Option<&str>,
        timeout: Duration,
        watch: &Stopwatch,
    ) -> Result<DnsAnswer, FetchError> {
        watch.enter(Phase::Dns);
        let config = match resolver {
            Some(addr) => {
                let addr: SocketAddr = addr
                    .parse()
                    .map_err(|_| FetchError::Request(format!("bad resolver address {addr:?}")))?;
                if let Some(why) = self.policy.blocks_socket(addr) {
                    return Err(FetchError::Blocked(format!("resolver {addr}: {why}")));
                }
                let mut c = ResolverConfig::new();
                c.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
                c
            }
            None => hickory_resolver::system_conf::read_system_conf()
                .map(|(c, _)| c)
                .map_err(|e| FetchError::Dns(format!("reading the system resolver: {e}")))?,
        };
        let mut opts = ResolverOpts::default();
        opts.cache_size = 0;
        opts.attempts = 1;
        opts.timeout = timeout;
        opts.ndots = 0;
        opts.use_hosts_file = false;
        let resolver = hickory_resolver::AsyncResolver::new(
            config,
            opts,
            GenericConnector::new(FromSource {
                tokio: TokioRuntimeProvider::default(),
                source: self.source,
            }),
        );
        let kind = match kind {
            RecordType::A => hickory_resolver::proto::rr::RecordType::A,
            RecordType::Aaaa => hickory_resolver::proto::rr::RecordType::AAAA,
            RecordType::Cname => hickory_resolver::proto::rr::RecordType::CNAME,
            RecordType::Mx => hickory_resolver::proto::rr::RecordType::MX,
            RecordType::Txt => hickory_resolver::proto::rr::RecordType::TXT,
            RecordType::Ns => hickory_resolver::proto::rr::RecordType::NS,
        };
        let fqdn = if name.ends_with('.') {
            name.to_string()
        } else {
            format!("{name}.")
        };
        let started = Instant::now();
        let answer = match resolver.lookup(fqdn.as_str(), kind).await {
            Ok(lookup) => DnsAnswer {
                rcode: ResponseCode::NoError,
                answers: lookup
                    .record_iter()
                    .filter(|r| r.record_type() == kind)
                    .filter_map(|r| r.data().map(answer_text))
                    .collect(),
                cnames: if kind == hickory_resolver::proto::rr::RecordType::CNAME {
                    Vec::new()
                } else {
                    lookup
                        .record_iter()
                        .filter(|r| {
                            r.record_type() == hickory_resolver::proto::rr::RecordType::CNAME
                        })
                        .filter_map(|r| r.data().map(|d| d.to_string()))
                        .collect()
                },
            },
            Err(e) => match e.kind() {
                ResolveErrorKind::NoRecordsFound { response_code, .. } => DnsAnswer {
                    rcode: *response_code,
                    answers: Vec::new(),
                    cnames: Vec::new(),
                },
                _ => {
                    return Err(FetchError::Dns(format!(
                        "dns query for {name} {} failed after {} ms: {e}",
                        kind,
                        started.elapsed().as_millis()
                    )))
                }
            },
        };
        Ok(answer)
    }
}

/// A record's data as dig shows it, but a TXT record of several strings
/// keeps them apart with a space (hickory's `Display` runs them together).
fn answer_text(data: &hickory_resolver::proto::rr::RData) -> String {
    match data {
        hickory_resolver::proto::rr::RData::TXT(txt) => txt
            .txt_data()
            .iter()
            .map(|s| String::from_utf8_lossy(s))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// Tokio's sockets for the resolver, its UDP queries sent from the source
/// address when one is set (hickory's own `bind_addr` is not used for UDP).
#[derive(Clone)]
struct FromSource {
    tokio: TokioRuntimeProvider,
    source: Option<std::net::IpAddr>,
}

type Tokio = TokioRuntimeProvider;

impl RuntimeProvider for FromSource {
    type Handle = <Tokio as RuntimeProvider>::Handle;
    type Timer = <Tokio as RuntimeProvider>::Timer;
    type Udp = <Tokio as RuntimeProvider>::Udp;
    type Tcp = <Tokio as RuntimeProvider>::Tcp;

    fn create_handle(&self) -> Self::Handle {
        self.tokio.create_handle()
    }

    fn connect_tcp(
        &self,
        server_addr: SocketAddr,
    ) -> std::pin::Pin<Box<dyn Send + std::future::Future<Output = std::io::Result<Self::Tcp>>>>
    {
        self.tokio.connect_tcp(server_addr)
    }

    fn bind_udp(
        &self,
        local_addr: SocketAddr,
        server_addr: SocketAddr,
    ) -> std::pin::Pin<Box<dyn Send + std::future::Future<Output = std::io::Result<Self::Udp>>>>
    {
        let local = match self.source {
            Some(ip) if ip.is_ipv4() == server_addr.is_ipv4() => {
                SocketAddr::new(ip, local_addr.port())
            }
            _ => local_addr,
        };
        self.tokio.bind_udp(local, server_addr)
    }
}
