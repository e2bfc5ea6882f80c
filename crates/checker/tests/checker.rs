//! The checker against a local target: statuses, reasons, timeouts,
//! redirects, and a fresh connection per run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pulse_checker::{Checker, ExtraRoots, Probe};
use pulse_core::policy::TargetPolicy;
use pulse_core::{FailureReason, RunOutcome, RunStatus};
use pulse_testkit::Target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn probe<'a>(url: &'a str, headers: &'a BTreeMap<String, String>) -> Probe<'a> {
    Probe {
        method: "GET",
        url,
        headers,
        body: None,
        timeout: Duration::from_millis(2000),
        expect: pulse_core::run::Expectations::status(200, None),
        verify_tls: true,
        kind: pulse_checker::ProbeKind::Http,
    }
}

#[tokio::test]
async fn an_ok_target_is_a_success_with_latency_and_code() {
    let target = Target::start().await;
    let checker = Checker::new(1024 * 1024, TargetPolicy::Default, &ExtraRoots::default()).unwrap();
    let h = BTreeMap::new();
    let url = target.url("/ok");
    let out = checker.run(&probe(&url, &h)).await;
    assert_eq!(out.status, RunStatus::Success, "{out:?}");
    assert_eq!(out.status_code, Some(200));
    assert_eq!(target.hits("/ok"), 1);
}

#[tokio::test]
async fn a_500_is_a_fail_with_status_mismatch() {
    let target = Target::start().await;
    let checker = Checker::new(1024, TargetPolicy::Default, &ExtraRoots::default()).unwrap();
    let h = BTreeMap::new();
    let url = target.url("/fail");
    let out = checker.run(&probe(&url, &h)).await;
    assert_eq!(out.status, RunStatus::Fail);
    assert_eq!(out.failure_reason, Some(FailureReason::StatusMismatch));
    assert_eq!(out.status_code, Some(500));
}

#[tokio::test]
async fn a_slow_target_times_out_within_the_timeout_plus_a_margin() {
    let target = Target::start().await;
    let checker = Checker::new(1024, TargetPolicy::Default, &ExtraRoots::default()).unwrap();
    let h = BTreeMap::new();
    let url = target.url("/slow?ms=5000");
    let mut p = probe(&url, &h);
    p.timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let out = checker.run(&p).await;
    let took = started.elapsed();
    assert_eq!(out.status, RunStatus::Timeout);
    assert_eq!(out.failure_reason, Some(FailureReason::Timeout));
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_millis(800), "{took:?}");
}

#[tokio::test]
async fn body_contains_passes_and_fails() {
    let target = Target::start().await;
    let checker = Checker::new(1024, TargetPolicy::Default, &ExtraRoots::default()).unwrap();
    let h = BTreeMap::new();
    let url = target.url("/ok");
    let mut p = probe(&url, &h);
    p.expect.body_contains = Some("healthy");
    assert_eq!(checker.run(&p).await.status, RunStatus::Success);
    p.expect.body_contains = Some("on fire");
    let out = checker.run(&p).await;
    assert_eq!(out.status, RunStatus::Fail);
    assert_eq!(out.failure_reason, Some(FailureReason::BodyMismatch));
}

#[tokio::test]
async fn a_refused_connection_is_an_error_with_reason_connect() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let checker = Checker::new(1024, TargetPolicy::Default, &ExtraRoots::default()).unwrap();
    let h = BTreeMap::new();
    let url = format!("http://127.0.0.1:{port}/");
    let out = checker.run(&probe(&url, &h)).await;
    assert_eq!(out.status, RunStatus::Error);
    assert_eq!(out.failure_reason, Some(FailureReason::Connect), "{out:?}");
    assert!(out.error.is_some());
}

#[tokio::test]
async fn redirects_are_followed_up_to_ten_hops() {
    let target = Target::start().await;
    let checker = Checker::new(1024, TargetPolicy::Default, &ExtraRoots::default()).unwrap();
    let h = BTreeMap::new();
    let ten = target.url("/redirect/10");
    assert_eq!(
        checker.run(&probe(&ten, &h)).await.status,
        RunStatus::Success
    );
    let eleven = target.url("/redirect/11");
    let out = checker.run(&probe(&eleven, &h)).await;
    assert_eq!(out.status, RunStatus::Error, "{out:?}");
}

#[tokio::test]
async fn each_run_uses_a_fresh_connection() {
    let target = Target::start().await;
    let checker = Checker::new(1024, TargetPolicy::Default, &ExtraRoots::default()).unwrap();
    let h = BTreeMap::new();
    let url = target.url("/peer");
    for _ in 0..3 {
        assert_eq!(
            checker.run(&probe(&url, &h)).await.status,
            RunStatus::Success
        );
    }
    let mut ports: Vec<u16> = target.peers().iter().map(|p| p.port()).collect();
    ports.dedup();
    assert_eq!(ports.len(), 3, "connections reused: {ports:?}");
}

#[tokio::test]
async fn custom_headers_and_method_are_sent() {
    let target = Target::start().await;
    let checker = Checker::new(1024, TargetPolicy::Default, &ExtraRoots::default()).unwrap();
    let mut h = BTreeMap::new();
    h.insert("x-pulse-test".to_string(), "yes".to_string());
    let url = target.url("/expect");
    let mut p = probe(&url, &h);
    assert_eq!(checker.run(&p).await.status_code, Some(400));
    p.method = "POST";
    p.body = Some("ping");
    assert_eq!(checker.run(&p).await.status, RunStatus::Success);
}

async fn run_with(policy: TargetPolicy, url: &str) -> RunOutcome {
    let checker = Checker::new(1024, policy, &ExtraRoots::default()).unwrap();
    let h = BTreeMap::new();
    checker.run(&probe(url, &h)).await
}

fn assert_blocked(out: &RunOutcome, what: &str) {
    assert_eq!(out.status, RunStatus::Error, "{what}: {out:?}");
    assert_eq!(
        out.failure_reason,
        Some(FailureReason::Blocked),
        "{what}: {out:?}"
    );
    assert!(
        out.error.as_deref().unwrap_or("").contains("target policy"),
        "{what}"
    );
}

#[tokio::test]
async fn public_only_refuses_loopback_by_literal_name_and_odd_spellings() {
    let target = Target::start().await;
    let port = target
        .url("/")
        .split(':')
        .nth(2)
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    for url in [
        format!("http://127.0.0.1:{port}/ok"),
        format!("http://localhost:{port}/ok"),
        format!("http://2130706433:{port}/ok"),
        format!("http://0177.0.0.1:{port}/ok"),
        format!("http://[::ffff:127.0.0.1]:{port}/ok"),
    ] {
        assert_blocked(&run_with(TargetPolicy::PublicOnly, &url).await, &url);
    }
    assert_eq!(target.hits("/ok"), 0, "nothing reached the target");
    // The default policy allows loopback (intranets are monitored).
    let ok = run_with(
        TargetPolicy::Default,
        &format!("http://localhost:{port}/ok"),
    )
    .await;
    assert_eq!(ok.status, RunStatus::Success, "{ok:?}");
}

#[tokio::test]
async fn pulse_own_services_are_never_reached_by_name_literal_or_redirect() {
    // The target stands in for Pulse's Redis or ClickHouse.
    let own = Target::start().await;
    let port: u16 = own
        .url("/")
        .split(':')
        .nth(2)
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let _guard =
        pulse_core::policy::protect_own([std::net::SocketAddr::from(([127, 0, 0, 1], port))]);
    let other = Target::start().await;
    for url in [
        format!("http://127.0.0.1:{port}/ok"),
        format!("http://localhost:{port}/ok"),
        format!("http://[::1]:{port}/ok"),
        format!(
            "{}?to=http://127.0.0.1:{port}/ok",
            other.url("/redirect-to")
        ),
    ] {
        let out = run_with(TargetPolicy::Default, &url).await;
        assert_eq!(
            out.failure_reason,
            Some(FailureReason::Blocked),
            "{url}: {out:?}"
        );
        assert!(
            out.error
                .as_deref()
                .unwrap_or("")
                .contains("Pulse's own services"),
            "{url}: {out:?}"
        );
    }
    assert_eq!(own.hits("/ok"), 0, "nothing reached the protected service");
    let ok = run_with(TargetPolicy::Default, &other.url("/ok")).await;
    assert_eq!(ok.status, RunStatus::Success, "{ok:?}");
}

#[tokio::test]
async fn the_default_policy_refuses_metadata_addresses_and_redirects_to_them() {
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://2852039166/",
        "http://[fd00:ec2::254]/",
        "http://[fe80::1]/",
    ] {
        assert_blocked(&run_with(TargetPolicy::Default, url).await, url);
    }
    // An allowed target that redirects to the metadata address.
    let target = Target::start().await;
    let hop = format!(
        "{}?to=http://169.254.169.254/latest/meta-data/",
        target.url("/redirect-to")
    );
    let out = run_with(TargetPolicy::Default, &hop).await;
    assert_blocked(&out, "redirect hop");
    assert_eq!(target.hits("/redirect-to"), 1, "the first hop was made");
}

/// A target that answers 200 and then streams a body that does not end
/// (up to 1 GiB, so the test stays bounded), counting the bytes it wrote.
async fn endless_target() -> (String, Arc<AtomicUsize>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // A small send buffer, so what was written is close to what was read.
    socket.set_send_buffer_size(16 * 1024).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(16).unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                if conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                let chunk = vec![b'x'; 16 * 1024];
                while counter.load(Ordering::SeqCst) < 1 << 30 {
                    if conn.write_all(&chunk).await.is_err() {
                        return;
                    }
                    counter.fetch_add(chunk.len(), Ordering::SeqCst);
                }
                // Hold the connection open: the body never ends.
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    (url, written)
}

#[tokio::test]
async fn an_endless_body_is_read_up_to_the_limit_and_judged_on_it() {
    const LIMIT: usize = 256 * 1024;
    let checker = Checker::new(LIMIT, TargetPolicy::Default, &ExtraRoots::default()).unwrap();
    let h = BTreeMap::new();
    for (contains, expected) in [
        (None, RunStatus::Success),
        (Some("xxxx"), RunStatus::Success),
        (Some("not there"), RunStatus::Fail),
    ] {
        let (url, written) = endless_target().await;
        let mut p = probe(&url, &h);
        p.timeout = Duration::from_secs(10);
        p.expect.body_contains = contains;
        let started = std::time::Instant::now();
        let out = checker.run(&p).await;
        let took = started.elapsed();
        assert_eq!(out.status, expected, "{contains:?}: {out:?}");
        assert!(took < Duration::from_secs(3), "{contains:?}: took {took:?}");
        // Let the writer notice the closed connection.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let written = written.load(Ordering::SeqCst);
        assert!(
            written < 16 * LIMIT,
            "{contains:?}: the target wrote {written} bytes"
        );
        eprintln!("{contains:?}: wrote {written} bytes in {took:?}");
    }
}

#[tokio::test]
async fn credentials_in_a_url_an_error_names_are_redacted() {
    let target = Target::start().await;
    let dead = pulse_testkit::free_port();
    let hop = format!(
        "{}?to=http://carol:s3cret@127.0.0.1:{dead}/",
        target.url("/redirect-to")
    );
    let out = run_with(TargetPolicy::Default, &hop).await;
    let error = out.error.unwrap();
    assert!(error.contains(&format!("127.0.0.1:{dead}")), "{error}");
    assert!(!error.contains("s3cret"), "{error}");
}
