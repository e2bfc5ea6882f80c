//! Proxy variables in the environment are ignored: a proxy would connect on
//! our behalf to addresses the target policy never sees. This file holds a
//! single test, so setting the variables races with no other test.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pulse_checker::{guarded_client, is_blocked, Checker, ExtraRoots, Probe};
use pulse_core::policy::TargetPolicy;
use pulse_core::FailureReason;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn checks_and_webhooks_ignore_proxy_variables() {
    // A "proxy" on loopback that would answer 200 to anything.
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    proxy.set_nonblocking(true).unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    // Before the runtime starts any thread.
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        std::env::set_var(var, &proxy_url);
    }
    for var in ["NO_PROXY", "no_proxy"] {
        std::env::remove_var(var);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let proxy = tokio::net::TcpListener::from_std(proxy).unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = proxy.accept().await {
                seen.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            }
        });

        let checker = Checker::new(1024, TargetPolicy::PublicOnly, &ExtraRoots::default()).unwrap();
        let headers = BTreeMap::new();
        let out = checker
            .run(&Probe {
                method: "GET",
                url: "http://localhost:9/",
                headers: &headers,
                body: None,
                timeout: Duration::from_secs(2),
                expect: pulse_core::run::Expectations::status(200, None),
                verify_tls: true,
                kind: pulse_checker::ProbeKind::Http,
            })
            .await;
        assert_eq!(out.failure_reason, Some(FailureReason::Blocked), "{out:?}");

        let webhooks = guarded_client(TargetPolicy::PublicOnly, 3)
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let err = webhooks
            .post("http://localhost:9/hook")
            .body("{}")
            .send()
            .await
            .expect_err("a blocked webhook is not sent");
        assert!(is_blocked(&err), "{err:?}");

        assert_eq!(connections.load(Ordering::SeqCst), 0, "the proxy was used");
    });
}
