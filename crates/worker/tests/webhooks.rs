//! Webhook delivery: retried through refusal, 500 and timeout until the
//! endpoint recovers, every attempt recorded, signed per Standard Webhooks
//! and verified by an implementation independent of ours (Python's hmac).

mod common;

use std::time::Duration;

use common::{check, Stack};
use pulse_testkit::{free_port, wait_until, Receiver, Target, TestEnv};
use serde_json::{json, Value};

const GLOBAL_KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const CHECK_KEY: &str = "whsec_c2VjcmV0LWZvci1vbmUtY2hlY2stb25seS0xMjM0";

/// Verifies a Standard Webhooks signature with Python's standard library.
fn python_verifies(key: &str, id: &str, ts: &str, body: &str, header: &str) -> bool {
    let script = r#"
import base64, hashlib, hmac, sys
key, msg_id, ts, body, header = sys.argv[1:6]
secret = base64.b64decode(key.split("_", 1)[1])
mac = hmac.new(secret, f"{msg_id}.{ts}.{body}".encode(), hashlib.sha256).digest()
expected = base64.b64encode(mac).decode()
sigs = [s.split(",", 1)[1] for s in header.split(" ") if s.startswith("v1,")]
sys.exit(0 if any(hmac.compare_digest(expected, s) for s in sigs) else 1)
"#;
    std::process::Command::new("python3")
        .args(["-c", script, key, id, ts, body, header])
        .status()
        .expect("python3")
        .success()
}

async fn deliveries(stack: &Stack, check_id: &str) -> Value {
    let alerts = stack.get(&format!("/checks/{check_id}/alerts")).await;
    alerts[0].clone()
}

#[tokio::test]
async fn a_webhook_is_retried_through_refusal_500_and_timeout_then_delivered_signed() {
    let target = Target::start().await;
    let port = free_port();
    let mut stack = Stack::start_full(TestEnv::new().await, 0, 1000).await;
    let mut settings = common::worker_settings(&stack.env);
    settings.webhook_backoff = Duration::from_millis(50);
    settings.webhook_timeout = Duration::from_millis(500);
    settings.webhook_secret = Some(pulse_core::webhook::WebhookKey::parse(GLOBAL_KEY).unwrap());
    stack.add_worker_with(settings).await;
    let created = stack
        .create(check(
            "down",
            &target.url("/fail"),
            json!({
                "interval_seconds": 3600, "alert_threshold": 1,
                "webhook_url": format!("http://127.0.0.1:{port}/hook"),
                "webhook_secret": CHECK_KEY
            }),
        ))
        .await;
    assert!(
        created.get("webhook_secret").is_none(),
        "the key is write-only"
    );
    let id = created["id"].as_str().unwrap().to_string();

    // 1. Nothing listens: connection refused, retried.
    wait_until(Duration::from_secs(20), "two refused attempts", || async {
        deliveries(&stack, &id).await["attempts"]
            .as_i64()
            .unwrap_or(0)
            >= 2
    })
    .await;
    let alert = deliveries(&stack, &id).await;
    assert_eq!(alert["delivery_state"], "pending");
    assert!(
        alert["last_error"].as_str().unwrap().contains("onnect"),
        "{alert}"
    );

    // 2. It answers 500.
    let hook = Receiver::start_on(port).await;
    hook.set_status(500);
    wait_until(Duration::from_secs(20), "a 500 attempt", || async {
        deliveries(&stack, &id).await["last_response_code"] == 500
    })
    .await;

    // 3. It hangs past the delivery timeout.
    hook.set_hang(true);
    let before = hook.requests().len();
    wait_until(Duration::from_secs(20), "a timed-out attempt", || async {
        hook.requests().len() > before
            && deliveries(&stack, &id).await["last_response_code"].is_null()
    })
    .await;

    // 4. It recovers.
    hook.set_hang(false);
    hook.set_status(204);
    wait_until(Duration::from_secs(30), "delivery", || async {
        deliveries(&stack, &id).await["delivery_state"] == "delivered"
    })
    .await;
    let alert = deliveries(&stack, &id).await;
    let log = alert["deliveries"].as_array().unwrap();
    assert_eq!(
        log.len() as i64,
        alert["attempts"].as_i64().unwrap(),
        "every attempt recorded"
    );
    let codes: Vec<Value> = log.iter().map(|a| a["response_code"].clone()).collect();
    assert!(
        codes[0].is_null() && codes[1].is_null(),
        "refused first: {codes:?}"
    );
    assert!(codes.contains(&json!(500)), "{codes:?}");
    assert_eq!(codes.last(), Some(&json!(204)));
    assert!(
        log.iter().any(|a| a["response_code"].is_null()
            && a["error"].as_str().unwrap_or("").contains("timed out")),
        "a timeout recorded: {log:?}"
    );

    // Signed with both keys; same webhook-id on every attempt.
    let requests = hook.requests();
    let (headers, body) = requests.last().unwrap();
    let (msg_id, ts, sig) = (
        &headers["webhook-id"],
        &headers["webhook-timestamp"],
        &headers["webhook-signature"],
    );
    assert_eq!(msg_id, alert["id"].as_str().unwrap());
    assert!(requests.iter().all(|(h, _)| &h["webhook-id"] == msg_id));
    assert!(
        python_verifies(GLOBAL_KEY, msg_id, ts, body, sig),
        "global key: {sig}"
    );
    assert!(
        python_verifies(CHECK_KEY, msg_id, ts, body, sig),
        "check key: {sig}"
    );
    assert!(
        !python_verifies(GLOBAL_KEY, msg_id, ts, &format!("{body} "), sig),
        "a changed body fails"
    );
    let payload: Value = serde_json::from_str(body).unwrap();
    assert_eq!(payload["type"], "failure");
}

#[tokio::test]
async fn a_410_stops_retrying() {
    let target = Target::start().await;
    let hook = Receiver::start().await;
    hook.set_status(410);
    let mut stack = Stack::start(0).await;
    let mut settings = common::worker_settings(&stack.env);
    settings.webhook_backoff = Duration::from_millis(50);
    stack.add_worker_with(settings).await;
    let created = stack
        .create(check(
            "gone",
            &target.url("/fail"),
            json!({"interval_seconds": 3600, "alert_threshold": 1, "webhook_url": hook.url()}),
        ))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    wait_until(Duration::from_secs(20), "a failed delivery", || async {
        deliveries(&stack, &id).await["delivery_state"] == "failed"
    })
    .await;
    let alert = deliveries(&stack, &id).await;
    assert_eq!(alert["attempts"], 1);
    assert_eq!(alert["last_response_code"], 410);
    assert_eq!(hook.requests().len(), 1);
}

#[tokio::test]
async fn a_webhook_whose_name_resolves_to_a_blocked_address_fails_after_one_attempt() {
    let hook = Receiver::start().await;
    let mut stack = Stack::start(0).await;
    let mut settings = common::worker_settings(&stack.env);
    settings.webhook_backoff = Duration::from_millis(50);
    settings.target_policy = pulse_core::policy::TargetPolicy::PublicOnly;
    stack.add_worker_with(settings).await;
    // localhost is a name: accepted by the API, refused when it resolves.
    let webhook_url = hook.url().replace("127.0.0.1", "localhost");
    let created = stack
        .create(check(
            "blocked hook",
            "http://localhost:9/",
            json!({"interval_seconds": 3600, "alert_threshold": 1, "webhook_url": webhook_url}),
        ))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    wait_until(Duration::from_secs(20), "a failed delivery", || async {
        deliveries(&stack, &id).await["delivery_state"] == "failed"
    })
    .await;
    let alert = deliveries(&stack, &id).await;
    assert_eq!(alert["attempts"], 1, "{alert}");
    assert!(
        alert["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("target policy"),
        "{alert}"
    );
    assert!(hook.requests().is_empty(), "nothing reached the hook");
}

#[tokio::test]
async fn credentials_and_webhook_tokens_stay_out_of_payloads_and_stored_errors() {
    let hook = Receiver::start().await;
    let dead = free_port();
    let mut stack = Stack::start(0).await;
    let mut settings = common::worker_settings(&stack.env);
    settings.webhook_backoff = Duration::from_millis(50);
    stack.add_worker_with(settings).await;

    // A target with credentials that refuses connections.
    let creds = stack
        .create(check(
            "with credentials",
            &format!("http://alice:s3cret@127.0.0.1:{dead}/health"),
            json!({"interval_seconds": 3600, "alert_threshold": 1, "webhook_url": hook.url()}),
        ))
        .await;
    let creds_id = creds["id"].as_str().unwrap().to_string();
    // A webhook whose path is its token, refusing connections.
    let dead_hook = free_port();
    let tokened = stack
        .create(check(
            "tokened hook",
            &format!("http://127.0.0.1:{dead}/"),
            json!({
                "interval_seconds": 3600, "alert_threshold": 1,
                "webhook_url": format!("http://127.0.0.1:{dead_hook}/hooks/T0KEN-XYZ")
            }),
        ))
        .await;
    let tokened_id = tokened["id"].as_str().unwrap().to_string();

    wait_until(Duration::from_secs(20), "the failure webhook", || async {
        !hook.received().is_empty()
    })
    .await;
    let payload = hook.received()[0].clone();
    assert_eq!(
        payload["url"],
        format!("http://***@127.0.0.1:{dead}/health"),
        "{payload}"
    );
    assert!(payload["error"].is_string(), "{payload}");
    assert!(!payload.to_string().contains("s3cret"), "{payload}");

    let stored = stack.get(&format!("/checks/{creds_id}")).await;
    let last_error = stored["last_error"].as_str().unwrap();
    assert!(!last_error.contains("s3cret"), "{last_error}");
    wait_until(Duration::from_secs(20), "the run in ClickHouse", || async {
        !stack.runs(&creds_id).await.is_empty()
    })
    .await;
    for run in stack.runs(&creds_id).await {
        let error = run.error.unwrap_or_default();
        assert!(!error.is_empty() && !error.contains("s3cret"), "{error}");
    }

    wait_until(Duration::from_secs(20), "a refused delivery", || async {
        deliveries(&stack, &tokened_id).await["attempts"]
            .as_i64()
            .unwrap_or(0)
            >= 1
    })
    .await;
    let alert = deliveries(&stack, &tokened_id).await;
    let last_error = alert["last_error"].as_str().unwrap();
    assert!(
        last_error.starts_with(&format!("http://127.0.0.1:{dead_hook}:")),
        "{last_error}"
    );
    assert!(!alert.to_string().contains("T0KEN"), "{alert}");
}
