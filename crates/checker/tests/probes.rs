//! TCP and DNS checks against servers the test runs on loopback: a line
//! server, a TLS server, and a small DNS server.

use std::collections::BTreeMap;
use std::time::Duration;

use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, CNAME, MX, TXT};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType as Rt};
use hickory_resolver::proto::serialize::binary::{BinDecodable, BinEncodable};
use pulse_checker::{Checker, ExtraRoots, Probe, ProbeKind};
use pulse_core::assertion::Assertion;
use pulse_core::check::RecordType;
use pulse_core::policy::TargetPolicy;
use pulse_core::run::Expectations;
use pulse_core::{FailureReason, RunOutcome, RunStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn line_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = conn.write_all(b"220 ready\r\n").await;
                let mut buf = [0u8; 256];
                if let Ok(n) = conn.read(&mut buf).await {
                    if buf[..n].starts_with(b"PING") {
                        tokio::time::sleep(Duration::from_millis(150)).await;
                        let _ = conn.write_all(b"PONG\r\n").await;
                    }
                }
            });
        }
    });
    port
}

/// Answers A for pulse.test (10.1.2.3), MX for mail.test, NXDOMAIN for
/// anything else.
async fn dns_server() -> String {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            let Ok(query) = Message::from_bytes(&buf[..n]) else {
                continue;
            };
            let mut resp = Message::new();
            resp.set_id(query.id())
                .set_message_type(MessageType::Response)
                .set_op_code(query.op_code())
                .set_recursion_desired(query.recursion_desired())
                .set_recursion_available(true);
            resp.add_queries(query.queries().to_vec());
            for q in query.queries() {
                let name = q.name().to_ascii();
                match (name.as_str(), q.query_type()) {
                    ("pulse.test.", Rt::A) => {
                        resp.add_answer(Record::from_rdata(
                            q.name().clone(),
                            60,
                            RData::A(A::new(10, 1, 2, 3)),
                        ));
                    }
                    ("mail.test.", Rt::MX) => {
                        resp.add_answer(Record::from_rdata(
                            q.name().clone(),
                            60,
                            RData::MX(MX::new(10, Name::from_ascii("mx1.mail.test.").unwrap())),
                        ));
                    }
                    ("txt.test.", Rt::TXT) => {
                        resp.add_answer(Record::from_rdata(
                            q.name().clone(),
                            60,
                            RData::TXT(TXT::new(vec!["v=spf1".into(), "-all".into()])),
                        ));
                    }
                    ("www.test.", Rt::A) => {
                        let target = Name::from_ascii("pulse.test.").unwrap();
                        resp.add_answer(Record::from_rdata(
                            q.name().clone(),
                            60,
                            RData::CNAME(CNAME(target.clone())),
                        ));
                        resp.add_answer(Record::from_rdata(
                            target,
                            60,
                            RData::A(A::new(10, 1, 2, 3)),
                        ));
                    }
                    ("pulse.test.", _)
                    | ("mail.test.", _)
                    | ("txt.test.", _)
                    | ("www.test.", _) => {}
                    _ => {
                        resp.set_response_code(ResponseCode::NXDomain);
                    }
                }
            }
            if let Ok(bytes) = resp.to_bytes() {
                let _ = socket.send_to(&bytes, peer).await;
            }
        }
    });
    addr
}

async fn run(policy: TargetPolicy, kind: ProbeKind<'_>, assertions: &[Assertion]) -> RunOutcome {
    let checker = Checker::new(1 << 20, policy, &ExtraRoots::default()).unwrap();
    let headers = BTreeMap::new();
    checker
        .run(&Probe {
            method: "GET",
            url: "",
            headers: &headers,
            body: None,
            timeout: Duration::from_secs(3),
            expect: Expectations {
                expected_status: None,
                body_contains: None,
                assertions,
                degraded_ms: None,
                max_response_ms: None,
            },
            verify_tls: false,
            kind,
        })
        .await
}

fn tcp<'a>(port: u16, send: Option<&'a str>, expect: Option<&'a str>) -> ProbeKind<'a> {
    ProbeKind::Tcp {
        host: "127.0.0.1",
        port,
        tls: false,
        send,
        expect,
    }
}

#[tokio::test]
async fn a_tcp_check_sends_its_text_and_expects_the_answer() {
    let port = line_server().await;
    let out = run(
        TargetPolicy::Default,
        tcp(port, Some("PING\r\n"), Some("PONG")),
        &[],
    )
    .await;
    assert_eq!(out.status, RunStatus::Success, "{out:?}");
    let p = out.phases.unwrap();
    assert!(
        p.connect_ms <= 50 && p.ttfb_ms + p.download_ms >= 140,
        "{p:?}"
    );
    assert_eq!(p.total_ms(), out.latency_ms);

    let out = run(
        TargetPolicy::Default,
        tcp(port, Some("PING\r\n"), Some("PANG")),
        &[],
    )
    .await;
    assert_eq!(out.failure_reason, Some(FailureReason::BodyMismatch));
    assert!(out.error.unwrap().contains("PANG"));

    // A banner is enough: connect, read, no send.
    let out = run(TargetPolicy::Default, tcp(port, None, Some("220")), &[]).await;
    assert_eq!(out.status, RunStatus::Success, "{out:?}");
    let assertions: Vec<Assertion> = serde_json::from_value(serde_json::json!([
        {"source": "text_body", "comparison": "matches", "target": "^220 "}
    ]))
    .unwrap();
    let out = run(
        TargetPolicy::Default,
        tcp(port, None, Some("ready")),
        &assertions,
    )
    .await;
    assert!(out.assertions[0].passed, "{out:?}");
}

#[tokio::test]
async fn a_tcp_check_fails_to_connect_or_is_refused_by_the_policy() {
    let dead = pulse_testkit::free_port();
    let out = run(TargetPolicy::Default, tcp(dead, None, None), &[]).await;
    assert_eq!(out.failure_reason, Some(FailureReason::Connect), "{out:?}");
    let out = run(TargetPolicy::PublicOnly, tcp(dead, None, None), &[]).await;
    assert_eq!(out.failure_reason, Some(FailureReason::Blocked), "{out:?}");
}

#[tokio::test]
async fn a_tcp_check_never_reaches_pulse_own_services() {
    let port = line_server().await;
    let _guard =
        pulse_core::policy::protect_own([std::net::SocketAddr::from(([127, 0, 0, 1], port))]);
    for host in ["127.0.0.1", "localhost", "::1"] {
        let kind = ProbeKind::Tcp {
            host,
            port,
            tls: false,
            send: Some("SET k v\r\n"),
            expect: None,
        };
        let out = run(TargetPolicy::Default, kind, &[]).await;
        assert_eq!(
            out.failure_reason,
            Some(FailureReason::Blocked),
            "{host}: {out:?}"
        );
        assert!(
            out.error
                .as_deref()
                .unwrap_or("")
                .contains("Pulse's own services"),
            "{out:?}"
        );
    }
}

#[tokio::test]
async fn a_tcp_check_over_tls_records_the_certificate() {
    let tls = pulse_testkit::TlsTarget::start(30).await;
    let kind = ProbeKind::Tcp {
        host: "localhost",
        port: tls.port,
        tls: true,
        send: Some("GET / HTTP/1.0\r\n\r\n"),
        expect: Some("ok"),
    };
    let out = run(TargetPolicy::Default, kind, &[]).await;
    assert_eq!(out.status, RunStatus::Success, "{out:?}");
    assert!(out.phases.unwrap().tls_ms < 1000);
    assert!((29..=30).contains(&out.certificate.unwrap().days_left));
}

fn dns<'a>(host: &'a str, record_type: RecordType, resolver: &'a str) -> ProbeKind<'a> {
    ProbeKind::Dns {
        host,
        record_type,
        resolver: Some(resolver),
    }
}

#[tokio::test]
async fn a_txt_record_keeps_its_strings_apart_and_a_followed_cname_is_recorded() {
    let server = dns_server().await;
    let out = run(
        TargetPolicy::Default,
        dns("txt.test", RecordType::Txt, &server),
        &[],
    )
    .await;
    assert_eq!(out.status, RunStatus::Success, "{out:?}");
    let assertions: Vec<Assertion> = serde_json::from_value(serde_json::json!([
        {"source": "text_body", "comparison": "equals", "target": "v=spf1 -all"}
    ]))
    .unwrap();
    let out = run(
        TargetPolicy::Default,
        dns("txt.test", RecordType::Txt, &server),
        &assertions,
    )
    .await;
    assert!(out.assertions[0].passed, "{out:?}");

    let assertions: Vec<Assertion> = serde_json::from_value(serde_json::json!([
        {"source": "text_body", "comparison": "equals", "target": "10.1.2.3"},
        {"source": "header", "property": "cname", "comparison": "equals", "target": "pulse.test."}
    ]))
    .unwrap();
    let out = run(
        TargetPolicy::Default,
        dns("www.test", RecordType::A, &server),
        &assertions,
    )
    .await;
    assert_eq!(out.status, RunStatus::Success, "{out:?}");
    assert!(out.assertions.iter().all(|a| a.passed), "{out:?}");
}

#[tokio::test]
async fn a_dns_check_reads_the_answers_and_asserts_on_them() {
    let server = dns_server().await;
    let out = run(
        TargetPolicy::Default,
        dns("pulse.test", RecordType::A, &server),
        &[],
    )
    .await;
    assert_eq!(out.status, RunStatus::Success, "{out:?}");
    let assertions: Vec<Assertion> = serde_json::from_value(serde_json::json!([
        {"source": "dns_answer", "comparison": "contains", "target": "10.1.2.3"},
        {"source": "rcode", "comparison": "equals", "target": "NOERROR"}
    ]))
    .unwrap();
    let out = run(
        TargetPolicy::Default,
        dns("pulse.test", RecordType::A, &server),
        &assertions,
    )
    .await;
    assert_eq!(out.status, RunStatus::Success, "{out:?}");
    assert_eq!(out.assertions[0].actual.as_deref(), Some("10.1.2.3"));
    let out = run(
        TargetPolicy::Default,
        dns("mail.test", RecordType::Mx, &server),
        &[],
    )
    .await;
    assert_eq!(out.status, RunStatus::Success, "{out:?}");
    let wrong: Vec<Assertion> = serde_json::from_value(serde_json::json!([
        {"source": "dns_answer", "comparison": "equals", "target": "10.9.9.9"}
    ]))
    .unwrap();
    let out = run(
        TargetPolicy::Default,
        dns("pulse.test", RecordType::A, &server),
        &wrong,
    )
    .await;
    assert_eq!(out.failure_reason, Some(FailureReason::Assertion));
    assert!(out.error.unwrap().contains(r#"got "10.1.2.3""#));
}

#[tokio::test]
async fn nxdomain_fails_unless_it_is_what_the_check_asserts() {
    let server = dns_server().await;
    let out = run(
        TargetPolicy::Default,
        dns("gone.test", RecordType::A, &server),
        &[],
    )
    .await;
    assert_eq!(out.failure_reason, Some(FailureReason::Dns), "{out:?}");
    assert_eq!(out.error.as_deref(), Some("gone.test: NXDOMAIN"));
    let expect_gone: Vec<Assertion> = serde_json::from_value(serde_json::json!([
        {"source": "rcode", "comparison": "equals", "target": "NXDOMAIN"}
    ]))
    .unwrap();
    let out = run(
        TargetPolicy::Default,
        dns("gone.test", RecordType::A, &server),
        &expect_gone,
    )
    .await;
    assert_eq!(out.status, RunStatus::Success, "{out:?}");
}

#[tokio::test]
async fn a_resolver_the_policy_refuses_is_not_asked() {
    let out = run(
        TargetPolicy::Default,
        dns("pulse.test", RecordType::A, "169.254.169.254:53"),
        &[],
    )
    .await;
    assert_eq!(out.failure_reason, Some(FailureReason::Blocked), "{out:?}");
}

#[tokio::test]
async fn tcp_and_dns_checks_go_out_from_the_source_address() {
    let source: std::net::IpAddr = "127.0.0.5".parse().unwrap();
    let checker = Checker::new(1 << 20, TargetPolicy::Default, &ExtraRoots::default())
        .unwrap()
        .with_source(Some(source));
    let headers = BTreeMap::new();
    let probe = |kind| Probe {
        method: "GET",
        url: "",
        headers: &headers,
        body: None,
        timeout: Duration::from_millis(500),
        expect: Expectations {
            expected_status: None,
            body_contains: None,
            assertions: &[],
            degraded_ms: None,
            max_response_ms: None,
        },
        verify_tls: false,
        kind,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = tokio::spawn(async move { listener.accept().await.unwrap().1 });
    let out = checker.run(&probe(tcp(port, None, None))).await;
    assert_eq!(out.status, RunStatus::Success, "{out:?}");
    assert_eq!(accepted.await.unwrap().ip(), source);
    // A DNS query to an explicit resolver: the server sees the source.
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let resolver = socket.local_addr().unwrap().to_string();
    let asked = tokio::spawn(async move {
        let mut buf = [0u8; 512];
        socket.recv_from(&mut buf).await.unwrap().1
    });
    let _ = checker
        .run(&probe(dns("pulse.test", RecordType::A, &resolver)))
        .await;
    assert_eq!(asked.await.unwrap().ip(), source);
}
