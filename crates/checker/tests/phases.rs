//! Where a run's time went and what certificate it saw, against targets
//! that take their time on purpose: before the first byte, in the middle of
//! the body, in the TLS handshake; and certificates that are fine, expired,
//! for another host, or self-signed, from a CA the test makes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use pulse_checker::{Checker, ExtraRoots, Probe};
use pulse_core::policy::TargetPolicy;
use pulse_core::{FailureReason, RunOutcome, RunStatus};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

const SLACK_MS: i64 = 50;

fn near(actual: u32, want: i64, what: &str, out: &RunOutcome) {
    let d = i64::from(actual) - want;
    assert!(
        (-5..=SLACK_MS).contains(&d),
        "{what}: {actual} ms, want ~{want}: {out:?}"
    );
}

/// Waits for a request's headers on `s`.
async fn read_request<S: tokio::io::AsyncRead + Unpin>(s: &mut S) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// Answers after `ttfb`, sending half the body, pausing `mid_body`, then
/// the rest.
async fn respond<S: tokio::io::AsyncWrite + Unpin>(s: &mut S, ttfb: Duration, mid_body: Duration) {
    tokio::time::sleep(ttfb).await;
    let _ = s
        .write_all(
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\ncontent-type: text/plain\r\n\r\nhello",
        )
        .await;
    let _ = s.flush().await;
    tokio::time::sleep(mid_body).await;
    let _ = s.write_all(b"world").await;
    let _ = s.shutdown().await;
}

async fn slow_http(ttfb: Duration, mid_body: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                read_request(&mut conn).await;
                respond(&mut conn, ttfb, mid_body).await;
            });
        }
    });
    port
}

struct Ca {
    key: KeyPair,
    cert: rcgen::Certificate,
}

fn ca() -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "Pulse test CA");
    let cert = params.self_signed(&key).unwrap();
    Ca { key, cert }
}

enum Leaf {
    /// Signed by the CA, for these names, valid until `not_after` (y, m, d).
    Signed(Vec<String>, (i32, u8, u8), (i32, u8, u8)),
    /// Signed by itself.
    SelfSigned,
}

/// An HTTPS target: handshake after `delay`, answer at once.
async fn tls_target(ca: &Ca, leaf: Leaf, delay: Duration) -> u16 {
    let key = KeyPair::generate().unwrap();
    let der = match leaf {
        Leaf::Signed(names, from, to) => {
            let mut params = CertificateParams::new(names).unwrap();
            params
                .distinguished_name
                .push(DnType::CommonName, "pulse target");
            params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
            params.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
            params
                .signed_by(&key, &ca.cert, &ca.key)
                .unwrap()
                .der()
                .clone()
        }
        Leaf::SelfSigned => {
            let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
            params.distinguished_name.push(DnType::CommonName, "myself");
            params.self_signed(&key).unwrap().der().clone()
        }
    };
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![der],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let Ok(mut tls) = acceptor.accept(conn).await else {
                    return;
                };
                read_request(&mut tls).await;
                respond(&mut tls, Duration::ZERO, Duration::ZERO).await;
            });
        }
    });
    port
}

fn trusting(ca: &Ca) -> ExtraRoots {
    let dir = std::env::temp_dir().join(format!("pulse-ca-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ca.pem");
    std::fs::write(&path, ca.cert.pem()).unwrap();
    ExtraRoots::from_pem_file(&path).unwrap()
}

async fn run(roots: &ExtraRoots, url: &str, verify: bool) -> RunOutcome {
    let checker = Checker::new(1 << 20, TargetPolicy::Default, roots).unwrap();
    let headers = BTreeMap::new();
    checker
        .run(&Probe {
            method: "GET",
            url,
            headers: &headers,
            body: None,
            timeout: Duration::from_secs(5),
            expect: pulse_core::run::Expectations::status(200, Some("helloworld")),
            verify_tls: verify,
            kind: pulse_checker::ProbeKind::Http,
        })
        .await
}

#[tokio::test]
async fn a_slow_first_byte_shows_in_ttfb_and_a_pause_in_the_body_in_download() {
    let port = slow_http(Duration::from_millis(300), Duration::from_millis(400)).await;
    let out = run(
        &ExtraRoots::default(),
        &format!("http://127.0.0.1:{port}/"),
        true,
    )
    .await;
    assert_eq!(out.status, RunStatus::Success, "{out:?}");
    let p = out.phases.unwrap();
    near(p.ttfb_ms, 300, "ttfb", &out);
    near(p.download_ms, 400, "download", &out);
    assert!(p.dns_ms + p.connect_ms + p.tls_ms <= 5, "{p:?}");
    assert_eq!(p.total_ms(), out.latency_ms, "phases add up to the latency");
}

#[tokio::test]
async fn a_slow_tls_handshake_shows_in_tls_and_the_certificate_is_recorded() {
    let ca = ca();
    let port = tls_target(
        &ca,
        Leaf::Signed(vec!["localhost".into()], (2025, 1, 1), (2100, 1, 1)),
        Duration::from_millis(300),
    )
    .await;
    let out = run(&trusting(&ca), &format!("https://localhost:{port}/"), true).await;
    assert_eq!(out.status, RunStatus::Success, "{out:?}");
    let p = out.phases.unwrap();
    near(p.tls_ms, 300, "tls", &out);
    assert_eq!(p.total_ms(), out.latency_ms);
    let cert = out.certificate.unwrap();
    assert_eq!(cert.sans, vec!["localhost".to_string()]);
    assert!(cert.subject.contains("pulse target"), "{cert:?}");
    assert!(cert.issuer.contains("Pulse test CA"), "{cert:?}");
    assert_eq!(cert.not_after.format("%Y-%m-%d").to_string(), "2100-01-01");
    assert!(cert.days_left > 365 * 70);
    assert_eq!(cert.fingerprint.len(), 64);
}

#[tokio::test]
async fn an_expired_certificate_fails_saying_since_when_unless_verification_is_off() {
    let ca = ca();
    let port = tls_target(
        &ca,
        Leaf::Signed(vec!["localhost".into()], (2020, 1, 1), (2021, 1, 1)),
        Duration::ZERO,
    )
    .await;
    let url = format!("https://localhost:{port}/");
    let out = run(&trusting(&ca), &url, true).await;
    assert_eq!(out.status, RunStatus::Error);
    assert_eq!(out.failure_reason, Some(FailureReason::Tls));
    let error = out.error.clone().unwrap();
    assert!(
        error.contains("expired") && error.contains("2021-01-01"),
        "{error}"
    );
    // The refused certificate is recorded, with its negative days left.
    let refused = out
        .certificate
        .expect("the expired certificate is recorded");
    assert!(refused.days_left < 0, "{refused:?}");
    // tls_verify off: the run goes on, and the certificate is still seen.
    let out = run(&trusting(&ca), &url, false).await;
    assert_eq!(out.status, RunStatus::Success, "{out:?}");
    assert!(out.certificate.unwrap().days_left < 0);
}

#[tokio::test]
async fn a_certificate_for_another_host_fails_as_a_name_mismatch() {
    let ca = ca();
    let port = tls_target(
        &ca,
        Leaf::Signed(vec!["example.test".into()], (2025, 1, 1), (2100, 1, 1)),
        Duration::ZERO,
    )
    .await;
    let out = run(&trusting(&ca), &format!("https://localhost:{port}/"), true).await;
    assert_eq!(out.failure_reason, Some(FailureReason::Tls));
    let error = out.error.unwrap();
    assert!(
        error.contains("name mismatch: it is for example.test, not localhost"),
        "{error}"
    );
    // The certificate that was refused is still recorded.
    let cert = out
        .certificate
        .expect("the refused certificate is recorded");
    assert!(
        cert.sans.iter().any(|s| s.contains("example.test")),
        "{cert:?}"
    );
}

#[tokio::test]
async fn unknown_and_self_signed_issuers_are_named() {
    let ca = ca();
    let port = tls_target(
        &ca,
        Leaf::Signed(vec!["localhost".into()], (2025, 1, 1), (2100, 1, 1)),
        Duration::ZERO,
    )
    .await;
    let out = run(
        &ExtraRoots::default(),
        &format!("https://localhost:{port}/"),
        true,
    )
    .await;
    assert!(
        out.certificate.is_some(),
        "an unknown CA's certificate is recorded"
    );
    assert!(out.error.unwrap().contains("unknown CA"));
    let port = tls_target(&ca, Leaf::SelfSigned, Duration::ZERO).await;
    let out = run(
        &ExtraRoots::default(),
        &format!("https://localhost:{port}/"),
        true,
    )
    .await;
    assert!(
        out.certificate.is_some(),
        "a self-signed certificate is recorded"
    );
    assert!(out.error.unwrap().contains("self-signed"));
}
