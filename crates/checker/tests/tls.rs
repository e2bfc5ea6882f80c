//! HTTPS targets signed by a private CA: refused until the CA is trusted
//! through `EXTRA_CA_FILE`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use pulse_checker::{Checker, ExtraRoots, Probe};
use pulse_core::policy::TargetPolicy;
use pulse_core::{FailureReason, RunOutcome, RunStatus};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// A CA (as PEM) and an HTTPS server on loopback whose certificate, for
/// `localhost` and `127.0.0.1`, it signed. The server answers 200 "ok".
async fn private_ca_target() -> (String, u16) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Pulse test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();

    let leaf_key = KeyPair::generate().unwrap();
    let leaf_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();

    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
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
    (ca.pem(), port)
}

async fn check(roots: &ExtraRoots, url: &str) -> RunOutcome {
    let checker = Checker::new(1024, TargetPolicy::Default, roots).unwrap();
    let headers = BTreeMap::new();
    checker
        .run(&Probe {
            method: "GET",
            url,
            headers: &headers,
            body: None,
            timeout: Duration::from_secs(5),
            expect: pulse_core::run::Expectations::status(200, Some("ok")),
            verify_tls: true,
            kind: pulse_checker::ProbeKind::Http,
        })
        .await
}

#[tokio::test]
async fn a_private_ca_target_fails_until_its_ca_is_trusted_through_a_pem_file() {
    let (ca_pem, port) = private_ca_target().await;
    let url = format!("https://localhost:{port}/");

    let out = check(&ExtraRoots::default(), &url).await;
    assert_eq!(out.failure_reason, Some(FailureReason::Tls), "{out:?}");

    let file =
        std::env::temp_dir().join(format!("pulse-test-ca-{}-{port}.pem", std::process::id()));
    std::fs::write(&file, ca_pem).unwrap();
    let roots = ExtraRoots::from_pem_file(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    assert_eq!(roots.len(), 1);
    for url in [url, format!("https://127.0.0.1:{port}/")] {
        let out = check(&roots, &url).await;
        assert_eq!(out.status, RunStatus::Success, "{url}: {out:?}");
    }
}

#[test]
fn a_file_without_certificates_is_refused() {
    let file = std::env::temp_dir().join(format!("pulse-test-empty-{}.pem", std::process::id()));
    std::fs::write(&file, "not a certificate\n").unwrap();
    let err = ExtraRoots::from_pem_file(&file).unwrap_err();
    std::fs::remove_file(&file).unwrap();
    assert!(err.to_string().contains("no PEM certificate"), "{err}");
    assert!(ExtraRoots::from_pem_file(std::path::Path::new("/nonexistent/ca.pem")).is_err());
}
