//! The benchmark's target: a minimal HTTP (or HTTPS, with a self-signed
//! certificate for `localhost`) server, run as its own process (`bench
//! target`), so its CPU is measured apart. `GET /t/N` answers 200 with a
//! small JSON body and counts a hit for check N; `GET /stats` returns the
//! counts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};

struct Hits(Vec<AtomicU64>);

pub async fn serve(checks: usize, delay_ms: u64, https: bool) -> anyhow::Result<()> {
    let hits = Arc::new(Hits((0..checks).map(|_| AtomicU64::new(0)).collect()));
    let app = Router::new()
        .route(
            "/t/{n}",
            get(
                move |State(h): State<Arc<Hits>>, Path(n): Path<usize>| async move {
                    if let Some(c) = h.0.get(n) {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                    if delay_ms > 0 {
                        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                    }
                    (
                        [("content-type", "application/json")],
                        format!(r#"{{"status":"ok","n":{n}}}"#),
                    )
                },
            ),
        )
        .route(
            "/stats",
            get(|State(h): State<Arc<Hits>>| async move {
                Json(
                    h.0.iter()
                        .map(|c| c.load(Ordering::Relaxed))
                        .collect::<Vec<u64>>(),
                )
            }),
        )
        .with_state(hits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    // The parent reads the port from our first line of output.
    println!("{}", listener.local_addr()?.port());
    if !https {
        axum::serve(listener, app).await?;
        return Ok(());
    }
    let acceptor = tls_acceptor()?;
    loop {
        let (tcp, _) = listener.accept().await?;
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    tower::ServiceExt::oneshot(app.clone(), req.map(axum::body::Body::new))
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
        });
    }
}

fn tls_acceptor() -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])?.self_signed(&key)?;
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
