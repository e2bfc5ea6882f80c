//! The REST API against real Postgres, Redis and ClickHouse: every route,
//! and every kind of bad input answered with a 4xx naming the field.

mod common;

use pulse_runtime::process::{ServiceSettings, Services};
use pulse_server::{Application, Settings};
use pulse_store::pg::api_keys::ApiKeyStore;
use pulse_testkit::{keyed_client, TestEnv};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

struct TestApp {
    base: String,
    http: reqwest::Client,
    database_url: String,
    _stop: tokio_util::sync::DropGuard,
}

impl TestApp {
    /// The API alone (scheduler off), on a free port, with a client that
    /// sends a valid API key.
    async fn spawn() -> TestApp {
        TestApp::spawn_with(|_| {}).await
    }

    async fn spawn_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
        let app = common::start("tests", tweak).await;
        TestApp {
            base: app.base,
            http: keyed_client(&app.key),
            database_url: app.database_url,
            _stop: app.stop,
        }
    }

    async fn post_raw(&self, path: &str, body: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.post_raw(path, &body.to_string()).await
    }

    async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .patch(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }

    async fn delete(&self, path: &str) -> StatusCode {
        self.http
            .delete(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .status()
    }
}

fn example() -> Value {
    json!({
        "name": "Google Homepage",
        "url": "https://www.google.com",
        "method": "GET",
        "expected_status": 200,
        "interval_seconds": 60,
        "alert_threshold": 3,
        "timeout_ms": 10000,
        "webhook_url": "https://your-webhook-url.com/alerts"
    })
}

#[tokio::test]
async fn creating_the_originals_example_answers_201_with_the_stored_check() {
    let app = TestApp::spawn().await;
    let (status, check) = app.post("/checks", example()).await;
    assert_eq!(status, StatusCode::CREATED, "{check}");
    for (k, v) in example().as_object().unwrap() {
        assert_eq!(&check[k], v, "field {k}");
    }
    assert_eq!(check["last_status"], "unknown");
    assert_eq!(check["consecutive_fails"], 0);
    assert_eq!(check["enabled"], true);
    assert_eq!(check["headers"], json!({}));
    for k in ["id", "next_run_at", "created_at", "updated_at"] {
        assert!(check[k].is_string(), "{k} missing: {check}");
    }
    let id = check["id"].as_str().unwrap();
    let (status, read) = app.get(&format!("/checks/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, check);
    let (status, list) = app.get("/checks").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([check]));
}

#[tokio::test]
async fn defaults_are_the_originals() {
    let app = TestApp::spawn().await;
    let (status, check) = app
        .post(
            "/checks",
            json!({"name": "min", "url": "http://example.test/"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(check["method"], "GET");
    assert_eq!(check["expected_status"], 200);
    assert_eq!(check["timeout_ms"], 10000);
    assert_eq!(check["alert_threshold"], 3);
    assert_eq!(check["interval_seconds"], 60);
    assert_eq!(check["webhook_url"], Value::Null);
}

#[tokio::test]
async fn patch_changes_only_the_given_fields_and_delete_hides_the_check() {
    let app = TestApp::spawn().await;
    let (_, check) = app.post("/checks", example()).await;
    let id = check["id"].as_str().unwrap();
    let (status, patched) = app
        .patch(
            &format!("/checks/{id}"),
            json!({"interval_seconds": 5, "enabled": false, "webhook_url": null, "headers": {"x-a": "b"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["interval_seconds"], 5);
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["webhook_url"], Value::Null);
    assert_eq!(patched["headers"], json!({"x-a": "b"}));
    assert_eq!(patched["name"], check["name"]);
    assert_eq!(patched["url"], check["url"]);

    let (status, err) = app
        .patch(&format!("/checks/{id}"), json!({"timeout_ms": 0}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["field"], "timeout_ms");

    assert_eq!(
        app.delete(&format!("/checks/{id}")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("/checks/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get("/checks").await.1, json!([]));
    assert_eq!(
        app.delete(&format!("/checks/{id}")).await,
        StatusCode::NOT_FOUND
    );
    // History stays readable.
    let (status, runs) = app.get(&format!("/checks/{id}/runs")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(runs, json!([]));
}

#[tokio::test]
async fn ids_must_be_uuids_and_unknown_ones_are_404() {
    let app = TestApp::spawn().await;
    for path in ["/checks/nope", "/checks/nope/runs", "/checks/nope/alerts"] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(body["error"].as_str().unwrap().contains("id"), "{body}");
    }
    let unknown = uuid::Uuid::new_v4();
    for path in [
        format!("/checks/{unknown}"),
        format!("/checks/{unknown}/runs"),
        format!("/checks/{unknown}/alerts"),
    ] {
        let (status, body) = app.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(body["error"].is_string());
    }
    let (status, _) = app
        .patch(&format!("/checks/{unknown}"), json!({"name": "x"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn runs_limit_is_validated() {
    let app = TestApp::spawn().await;
    let (_, check) = app.post("/checks", example()).await;
    let id = check["id"].as_str().unwrap();
    for bad in ["0", "1001", "abc", "-1"] {
        let (status, body) = app.get(&format!("/checks/{id}/runs?limit={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "limit={bad}");
        assert!(body["error"].as_str().unwrap().contains("limit"), "{body}");
    }
    let (status, runs) = app.get(&format!("/checks/{id}/runs?limit=1000")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(runs.as_array().unwrap().is_empty());
    let (status, alerts) = app.get(&format!("/checks/{id}/alerts")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(alerts, json!([]));
}

#[tokio::test]
async fn every_bad_input_is_a_4xx_naming_the_field() {
    let app = TestApp::spawn().await;
    let with = |k: &str, v: Value| {
        let mut o = example();
        o[k] = v;
        o
    };
    let without = |k: &str| {
        let mut o = example();
        o.as_object_mut().unwrap().remove(k);
        o
    };
    let cases: Vec<(Value, &str)> = vec![
        (without("url"), "url"),
        (without("name"), "name"),
        (with("url", json!("ftp://example.com")), "url"),
        (with("url", json!("not a url")), "url"),
        (with("url", json!(42)), "url"),
        (with("method", json!("BREW")), "method"),
        (with("interval_seconds", json!(0)), "interval_seconds"),
        (with("interval_seconds", json!(86401)), "interval_seconds"),
        (with("interval_seconds", json!("often")), "interval_seconds"),
        (with("timeout_ms", json!(0)), "timeout_ms"),
        (with("timeout_ms", json!(120_001)), "timeout_ms"),
        (with("alert_threshold", json!(0)), "alert_threshold"),
        (with("expected_status", json!(99)), "expected_status"),
        (with("expected_status", json!(600)), "expected_status"),
        (with("webhook_url", json!("mailto:x@y")), "webhook_url"),
        (with("headers", json!({"bad header": "v"})), "headers"),
        (with("headers", json!({"x-ok": "line\nbreak"})), "headers"),
        (with("headers", json!({"x-num": 5})), "headers"),
        (with("body", json!("x".repeat(70_000))), "body"),
        (with("enabled", json!("yes")), "enabled"),
        (with("surprise", json!(1)), "surprise"),
    ];
    for (body, field) in cases {
        let (status, err) = app.post("/checks", body.clone()).await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {status} {err}"
        );
        let msg = err["error"].as_str().unwrap_or_default();
        assert!(
            msg.contains(field),
            "{field}: error {msg:?} does not name it"
        );
    }
    assert_eq!(app.get("/checks").await.1, json!([]), "nothing was stored");
}

#[tokio::test]
async fn malformed_and_oversized_requests_are_rejected_cleanly() {
    let app = TestApp::spawn().await;
    let (status, err) = app.post_raw("/checks", "{\"name\": ").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(err["error"].is_string());
    let (status, err) = app.post_raw("/checks", "[1, 2]").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(err["error"].is_string());
    let huge = json!({"name": "x", "url": "http://a", "body": "y".repeat(300_000)});
    let (status, err) = app.post("/checks", huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{err}");
    assert!(err["error"].is_string());
    let resp = app
        .http
        .post(format!("{}/checks", app.base))
        .body(example().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, err) = app.get("/nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(err["error"].is_string());
}

#[tokio::test]
async fn health_and_ready_answer() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.get("/health").await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    assert_eq!(
        app.get("/ready").await,
        (StatusCode::OK, json!({"status": "ready"}))
    );
}

#[tokio::test]
async fn ready_is_503_naming_the_service_that_is_down() {
    let env = TestEnv::new().await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let pool = pulse_store::pg::pool(&env.database_url, 2).unwrap();
    let queue = pulse_store::Queue::connect(&env.redis_url, &env.redis_prefix)
        .await
        .unwrap();
    let results = pulse_store::ResultsStore::new(
        &pulse_store::ClickHouseDsn::parse(&format!("http://127.0.0.1:{dead_port}/x")).unwrap(),
    );
    let state = pulse_server::api::AppState::new(
        &Services {
            pool,
            queue,
            results,
        },
        true,
        pulse_server::api::Limits {
            per_key: 50,
            per_ip: 100,
        },
        pulse_runtime::ServerMetrics::new(),
        Default::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, pulse_server::api::router(state, false))
            .await
            .unwrap()
    });
    let resp = reqwest::get(format!("http://{addr}/ready")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["down"], "clickhouse");
    assert!(body["error"].as_str().unwrap().contains("clickhouse"));
}

#[tokio::test]
async fn two_servers_starting_together_both_migrate_cleanly() {
    let env = TestEnv::new().await;
    let settings = || {
        let services = ServiceSettings::new(
            &env.database_url,
            &env.redis_url,
            &env.clickhouse_dsn,
            &env.redis_prefix,
        )
        .unwrap();
        Settings::with_services(services)
    };
    let stop = CancellationToken::new();
    let (a, b) = tokio::join!(
        Application::build(settings(), &stop),
        Application::build(settings(), &stop)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.port(), b.port());
    // Both see the same, complete schema.
    let key = ApiKeyStore::new(a.services().pool.clone())
        .create("t")
        .await
        .unwrap();
    let client = keyed_client(&key);
    let base_a = format!("http://127.0.0.1:{}", a.port());
    let base_b = format!("http://127.0.0.1:{}", b.port());
    tokio::spawn(a.run(stop.clone()));
    tokio::spawn(b.run(stop.clone()));
    let created: Value = client
        .post(format!("{base_a}/checks"))
        .json(&example())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let read: Value = client
        .get(format!(
            "{base_b}/checks/{}",
            created["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["id"], created["id"]);
    stop.cancel();
}

fn server_cli(database_url: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .args(args)
        .env_clear()
        .env("DATABASE_URL", database_url)
        .output()
        .expect("run server binary")
}

#[tokio::test]
async fn checks_need_a_valid_unrevoked_key_and_health_does_not() {
    let app = TestApp::spawn().await;
    let anon = reqwest::Client::new();
    let resp = anon
        .get(format!("{}/checks", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("API key"));
    let resp = keyed_client("pulse_deadbeef_nope")
        .get(format!("{}/checks", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    for open in ["/health", "/ready"] {
        let resp = anon
            .get(format!("{}{open}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{open}");
    }

    // A key made with the CLI works until revoked with the CLI.
    let out = server_cli(&app.database_url, &["create-api-key", "--name", "ci"]);
    assert!(out.status.success(), "{out:?}");
    let key = String::from_utf8(out.stdout).unwrap();
    let key = key.trim();
    assert!(key.starts_with("pulse_") && key.len() > 50, "{key}");
    assert_eq!(key.lines().count(), 1, "the key alone on stdout");
    let client = keyed_client(key);
    let resp = client
        .get(format!("{}/checks", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let out = server_cli(&app.database_url, &["revoke-api-key", "--name", "ci"]);
    assert!(out.status.success(), "{out:?}");
    let resp = client
        .get(format!("{}/checks", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("revoked"));
    // Only a hash is stored.
    let pool = pulse_store::pg::pool(&app.database_url, 1).unwrap();
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE key_hash = convert_to($1, 'UTF8')")
            .bind(key)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored, 0);
    let bad = server_cli(&app.database_url, &["create-api-key"]);
    assert!(!bad.status.success());
}

#[tokio::test]
async fn over_the_rate_limit_is_429_with_retry_after() {
    let app = TestApp::spawn_with(|s| {
        s.limits.per_key = 2;
    })
    .await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..8 {
        let resp = app
            .http
            .get(format!("{}/checks", app.base))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            retry_after = resp.headers().get("retry-after").cloned();
            let body: Value = resp.json().await.unwrap();
            assert!(body["error"].as_str().unwrap().contains("rate limit"));
        }
        statuses.push(status);
    }
    assert_eq!(statuses[0], StatusCode::OK);
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let secs: u64 = retry_after.unwrap().to_str().unwrap().parse().unwrap();
    assert!(secs >= 1);
}

#[tokio::test]
async fn the_per_ip_limit_applies_before_authentication() {
    let app = TestApp::spawn_with(|s| {
        s.limits.per_ip = 2;
    })
    .await;
    let anon = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            anon.get(format!("{}/checks", app.base))
                .send()
                .await
                .unwrap()
                .status(),
        );
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn metrics_count_api_requests_by_route_template() {
    let app = TestApp::spawn().await;
    let (_, check) = app.post("/checks", example()).await;
    let id = check["id"].as_str().unwrap();
    app.get(&format!("/checks/{id}")).await;
    app.get("/checks/not-a-uuid").await;
    let scrape = |accept: &'static str| {
        let url = format!("{}/metrics", app.base);
        async move {
            let resp = reqwest::Client::new()
                .get(url)
                .header("accept", accept)
                .send()
                .await
                .unwrap();
            let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
            (content_type, resp.text().await.unwrap())
        }
    };
    let (content_type, open) = scrape("application/openmetrics-text; version=1.0.0").await;
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    assert!(open.ends_with("# EOF\n"), "the body is OpenMetrics");
    for accept in ["text/plain; version=0.0.4", "*/*"] {
        let (content_type, classic) = scrape(accept).await;
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        assert!(!classic.contains("# EOF"), "{classic}");
        assert!(
            classic.contains("# TYPE pulse_api_requests_total counter"),
            "{classic}"
        );
    }
    let text = open;
    assert!(
        text.contains(r#"pulse_build_info{binary="server",version=""#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"pulse_http_request_duration_seconds_count{method="POST",route="/checks"} 1"#
        ),
        "{text}"
    );
    assert!(
        !text.contains("pulse_runs_total"),
        "no worker series on the server"
    );
    assert!(
        text.contains(r#"pulse_api_requests_total{method="POST",route="/checks",status="201"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/checks/{id}",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/checks/{id}",status="400"} 1"#),
        "{text}"
    );
    assert!(!text.contains(id), "ids are not labels");

    let locked = TestApp::spawn_with(|s| s.metrics_need_key = true).await;
    let anon = reqwest::get(format!("{}/metrics", locked.base))
        .await
        .unwrap();
    assert_eq!(anon.status(), StatusCode::UNAUTHORIZED);
    let keyed = locked
        .http
        .get(format!("{}/metrics", locked.base))
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), StatusCode::OK);
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let env = TestEnv::new().await;
    let port = pulse_testkit::free_port();
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .env_clear()
        .env("DATABASE_URL", &env.database_url)
        .env("REDIS_URL", &env.redis_url)
        .env("CLICKHOUSE_DSN", &env.clickhouse_dsn)
        .env("REDIS_PREFIX", &env.redis_prefix)
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/ready");
    pulse_testkit::wait_until(
        std::time::Duration::from_secs(20),
        "server ready",
        || async { reqwest::get(&url).await.is_ok_and(|r| r.status() == 200) },
    )
    .await;
    let pid = server.id().unwrap().to_string();
    let sent = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(sent.success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), server.wait())
        .await
        .expect("server exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(reqwest::get(&url).await.is_err(), "no longer listening");
    // The logs: a start-up line with the version, and an access log line
    // per request.
    let mut out = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut server.stdout.take().unwrap(), &mut out)
        .await
        .unwrap();
    let lines: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        lines.iter().any(|l| l["fields"]["message"] == "starting"
            && l["fields"]["version"] == env!("CARGO_PKG_VERSION")),
        "{out}"
    );
    assert!(
        lines.iter().any(|l| l["span"]["path"] == "/ready"
            && l["fields"]["status"] == 200
            && l["fields"]["latency"].is_string()),
        "no access log line for /ready:\n{out}"
    );
}

#[tokio::test]
async fn a_nul_character_in_any_text_field_is_a_4xx_naming_it() {
    let app = TestApp::spawn().await;
    for field in [
        "name",
        "url",
        "method",
        "body",
        "body_contains",
        "webhook_url",
    ] {
        let mut body = json!({"name": "n", "url": "http://127.0.0.1:9/"});
        body[field] = json!("a\u{0}b");
        let (status, err) = app.post("/checks", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {err}");
        assert_eq!(err["field"], field, "{err}");
    }
    let mut headers = json!({"name": "n", "url": "http://127.0.0.1:9/"});
    headers["headers"] = json!({"x-a": "a\u{0}"});
    let (status, err) = app.post("/checks", headers).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["field"], "headers");
    let (status, err) = app.get("/checks?q=a%00b").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["field"], "q");
}

#[tokio::test]
async fn null_on_a_required_field_in_patch_is_a_4xx_naming_it() {
    let app = TestApp::spawn().await;
    let (_, check) = app.post("/checks", example()).await;
    let id = check["id"].as_str().unwrap();
    for field in ["name", "url", "interval_seconds", "enabled", "timeout_ms"] {
        let (status, err) = app
            .patch(&format!("/checks/{id}"), json!({ field: null }))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {err}");
        assert_eq!(err["field"], field);
    }
    let (_, now) = app.get(&format!("/checks/{id}")).await;
    assert_eq!(now["name"], check["name"], "nothing changed");
}

#[tokio::test]
async fn every_error_is_json_with_the_field_when_there_is_one() {
    let app = TestApp::spawn().await;
    let mut typo = example();
    typo["expected_staus"] = json!(200);
    let (status, err) = app.post("/checks", typo).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["field"], "expected_staus", "{err}");
    let mut wrong_type = example();
    wrong_type["interval_seconds"] = json!("soon");
    let (status, err) = app.post("/checks", wrong_type).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["field"], "interval_seconds", "{err}");

    // 405, a bad path id, a bad percent-encoding: JSON bodies too.
    let resp = app
        .http
        .put(format!("{}/checks", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let err: Value = resp.json().await.unwrap();
    assert!(err["error"].is_string(), "{err}");
    for path in ["/checks/not-a-uuid", "/checks/%FF%FE"] {
        let (status, err) = app.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(err["field"], "id", "{path}: {err}");
    }
    let long = format!("{}/checks?q={}", app.base, "a".repeat(20_000));
    let resp = app.http.get(long).send().await.unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    let err: Value = resp.json().await.unwrap();
    assert!(err["error"].is_string(), "{err}");
}

fn is_rfc3339_ms_z(v: &Value) -> bool {
    let s = v.as_str().unwrap_or_default();
    // 2026-11-28T17:53:30.123Z
    s.len() == 24
        && s.ends_with('Z')
        && s.as_bytes()[19] == b'.'
        && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

#[tokio::test]
async fn times_are_rfc3339_utc_with_milliseconds() {
    let app = TestApp::spawn().await;
    let (_, check) = app.post("/checks", example()).await;
    for field in ["created_at", "updated_at", "next_run_at"] {
        assert!(is_rfc3339_ms_z(&check[field]), "{field}: {}", check[field]);
    }
}

#[tokio::test]
async fn concurrent_patches_each_keep_their_change_and_a_stale_etag_is_412() {
    let app = TestApp::spawn().await;
    let (_, check) = app.post("/checks", example()).await;
    let id = check["id"].as_str().unwrap().to_string();
    let path = format!("/checks/{id}");
    // 20 clients each change a different field at once: every change stays.
    let fields: Vec<(&str, Value)> = vec![
        ("name", json!("renamed")),
        ("timeout_ms", json!(1234)),
        ("interval_seconds", json!(77)),
        ("alert_threshold", json!(9)),
        ("retries", json!(2)),
        ("expected_status", json!(204)),
        ("body_contains", json!("ok")),
        ("method", json!("HEAD")),
        ("headers", json!({"x-a": "b"})),
        ("body", json!("payload")),
    ];
    let mut tasks = Vec::new();
    for (field, value) in fields.clone() {
        let http = app.http.clone();
        let url = format!("{}{path}", app.base);
        tasks.push(tokio::spawn(async move {
            let resp = http
                .patch(url)
                .json(&json!({ field: value }))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let resp = app
        .http
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap();
    let tag = resp.headers()["etag"].to_str().unwrap().to_string();
    let now: Value = resp.json().await.unwrap();
    for (field, value) in &fields {
        assert_eq!(&now[*field], value, "{field} was lost");
    }
    assert_eq!(
        tag,
        format!("\"{}\"", fields.len() + 1),
        "one version per change"
    );

    // If-Match: the current tag applies, a stale one is 412 and changes
    // nothing.
    let patch = |tag: &str, name: &str| {
        app.http
            .patch(format!("{}{path}", app.base))
            .header("if-match", tag)
            .json(&json!({ "name": name }))
            .send()
    };
    let resp = patch(&tag, "fresh").await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let new_tag = resp.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(new_tag, tag);
    let resp = patch(&tag, "stale").await.unwrap();
    assert_eq!(resp.status(), StatusCode::PRECONDITION_FAILED);
    let err: Value = resp.json().await.unwrap();
    assert!(err["error"].is_string());
    assert_eq!(app.get(&path).await.1["name"], "fresh");
}

#[tokio::test]
async fn checks_are_listed_a_page_at_a_time_and_filtered() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let mut body = example();
        body["name"] = json!(format!(
            "{} site {i}",
            if i % 2 == 0 { "Even" } else { "odd" }
        ));
        body["enabled"] = json!(i % 3 != 0);
        let (status, check) = app.post("/checks", body).await;
        assert_eq!(status, StatusCode::CREATED);
        ids.push(check["id"].as_str().unwrap().to_string());
    }
    // Pages of 3 follow the cursor to the end, each check once, in order.
    let mut seen = Vec::new();
    let mut url = format!("{}/checks?limit=3", app.base);
    loop {
        let resp = app.http.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let next = resp
            .headers()
            .get("x-next-cursor")
            .map(|v| v.to_str().unwrap().to_string());
        let page: Vec<Value> = resp.json().await.unwrap();
        assert!(page.len() <= 3);
        seen.extend(page.iter().map(|c| c["id"].as_str().unwrap().to_string()));
        match next {
            Some(c) => url = format!("{}/checks?limit=3&cursor={c}", app.base),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let (_, even) = app.get("/checks?q=even").await;
    assert_eq!(
        even.as_array().unwrap().len(),
        4,
        "case-insensitive name search"
    );
    let (_, off) = app.get("/checks?enabled=false").await;
    assert_eq!(off.as_array().unwrap().len(), 3);
    let (_, unknown) = app.get("/checks?status=unknown&q=odd").await;
    assert_eq!(unknown.as_array().unwrap().len(), 3);
    let (_, none) = app.get("/checks?q=%25").await;
    assert_eq!(
        none.as_array().unwrap().len(),
        0,
        "% is a literal, not a wildcard"
    );
    for bad in ["limit=0", "limit=1001", "cursor=zzz", "status=up"] {
        let (status, err) = app.get(&format!("/checks?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(err["field"].is_string(), "{bad}: {err}");
    }
    let (status, _) = app
        .get(&format!("/checks/{}/runs?from=yesterday", ids[0]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, runs) = app
        .get(&format!(
            "/checks/{}/runs?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z",
            ids[0]
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(runs, json!([]));
}

#[tokio::test]
async fn a_url_or_webhook_the_policy_can_never_reach_is_refused() {
    let app = TestApp::spawn().await;
    let mut body = example();
    body["webhook_url"] = json!("http://169.254.169.254/latest/meta-data");
    let (status, err) = app.post("/checks", body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["field"], "webhook_url");
    let (_, check) = app.post("/checks", example()).await;
    let (status, err) = app
        .patch(
            &format!("/checks/{}", check["id"].as_str().unwrap()),
            json!({"url": "http://[fe80::1]/"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["field"], "url");
}

#[tokio::test]
async fn half_sent_requests_are_cut_off_and_health_still_answers() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(|s| {
        s.http.header_read_timeout = std::time::Duration::from_millis(500);
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    let (status, _) = app.get("/health").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "health answers beside 300 half-sent requests"
    );
    // Each half-sent request is closed once the header deadline passes.
    let started = std::time::Instant::now();
    for mut s in slow {
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("a half-sent request was not cut off")
            .unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn connections_past_the_cap_are_closed_at_once() {
    use tokio::io::AsyncReadExt;
    let app = TestApp::spawn_with(|s| {
        s.http.max_connections = 4;
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut extra = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(std::time::Duration::from_secs(2), extra.read(&mut buf))
        .await
        .expect("the fifth connection was left open")
        .unwrap_or(0);
    assert_eq!(n, 0);
    drop(held);
    // Freed slots serve again.
    let ok = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            if let Ok(r) = app.http.get(format!("{}/health", app.base)).send().await {
                if r.status() == StatusCode::OK {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(ok.is_ok());
}

#[tokio::test]
async fn the_bearer_scheme_is_accepted_in_any_case() {
    let app = TestApp::spawn().await;
    let pool = pulse_store::pg::pool(&app.database_url, 1).unwrap();
    let key = ApiKeyStore::new(pool).create("case").await.unwrap();
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let resp = reqwest::Client::new()
            .get(format!("{}/checks", app.base))
            .header("authorization", format!("{scheme} {key}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{scheme}");
    }
}

#[tokio::test]
async fn urls_the_target_policy_refuses_are_422_naming_the_field_at_create_and_patch() {
    let app = TestApp::spawn().await;
    let metadata = "http://169.254.169.254/latest/meta-data/";
    for field in ["url", "webhook_url"] {
        let mut body = example();
        body[field] = json!(metadata);
        let (status, err) = app.post("/checks", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {err}");
        assert_eq!(err["field"], field);
        assert!(
            err["error"].as_str().unwrap().contains("target policy"),
            "{err}"
        );
    }
    let (_, check) = app.post("/checks", example()).await;
    let path = format!("/checks/{}", check["id"].as_str().unwrap());
    for field in ["url", "webhook_url"] {
        let (status, err) = app
            .patch(&path, json!({ field: "http://[fd00:ec2::254]/" }))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {err}");
        assert_eq!(err["field"], field);
    }
    let (_, unchanged) = app.get(&path).await;
    assert_eq!(unchanged["url"], example()["url"]);
}

#[tokio::test]
async fn the_server_applies_its_own_target_policy_to_urls() {
    let app =
        TestApp::spawn_with(|s| s.target_policy = pulse_core::policy::TargetPolicy::PublicOnly)
            .await;
    let mut body = example();
    body["url"] = json!("http://127.0.0.1:9/");
    let (status, err) = app.post("/checks", body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["field"], "url");
    let mut body = example();
    body["webhook_url"] = json!("http://10.0.0.1/hook");
    let (status, err) = app.post("/checks", body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["field"], "webhook_url");
}

#[tokio::test]
async fn assertions_are_stored_and_a_bad_one_is_named_by_index() {
    let app = TestApp::spawn().await;
    let mut body = example();
    body["assertions"] = json!([
        {"source": "status_code", "comparison": "equals", "target": 200},
        {"source": "json_body", "property": "$.status", "comparison": "equals", "target": "ok"},
        {"source": "header", "property": "Content-Type", "comparison": "contains", "target": "json"},
        {"source": "response_time", "comparison": "less_than", "target": "500"}
    ]);
    body["degraded_ms"] = json!(300);
    body["max_response_ms"] = json!(2000);
    let (status, check) = app.post("/checks", body).await;
    assert_eq!(status, StatusCode::CREATED, "{check}");
    assert_eq!(check["assertions"].as_array().unwrap().len(), 4);
    assert_eq!(check["assertions"][0]["target"], "200");
    assert_eq!(check["degraded_ms"], 300);
    let id = check["id"].as_str().unwrap();
    let (_, read) = app.get(&format!("/checks/{id}")).await;
    assert_eq!(read["assertions"], check["assertions"]);
    for (bad, field) in [
        (
            json!([{"source": "json_body", "property": "$[", "comparison": "exists"}]),
            "assertions[0].property",
        ),
        (
            json!([{"source": "text_body", "comparison": "matches", "target": "(unclosed"}]),
            "assertions[0].target",
        ),
        (
            json!([{"source": "status_code", "comparison": "equals", "target": 200}, {"source": "smell", "comparison": "exists"}]),
            "assertions[1].source",
        ),
        (
            json!([{"source": "text_body", "comparison": "contains"}]),
            "assertions[0].target",
        ),
    ] {
        let (status, err) = app
            .patch(&format!("/checks/{id}"), json!({ "assertions": bad }))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        assert_eq!(err["field"], field, "{err}");
    }
    let (_, cleared) = app
        .patch(&format!("/checks/{id}"), json!({"assertions": null}))
        .await;
    assert_eq!(cleared["assertions"], json!([]));
}

#[tokio::test]
async fn tcp_and_dns_checks_are_created_and_their_fields_validated() {
    let app = TestApp::spawn().await;
    let (status, tcp) = app
        .post(
            "/checks",
            json!({"name": "smtp", "type": "tcp", "host": "127.0.0.1", "port": 25,
                   "send": "EHLO pulse\r\n", "expect": "250"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{tcp}");
    assert_eq!(tcp["type"], "tcp");
    assert_eq!(tcp["url"], "tcp://127.0.0.1:25");
    let (status, dns) = app
        .post(
            "/checks",
            json!({"name": "zone", "type": "dns", "host": "pulse.test", "record_type": "mx",
                   "resolver": "127.0.0.1:5353",
                   "assertions": [{"source": "dns_answer", "comparison": "contains", "target": "mx1"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{dns}");
    assert_eq!(dns["record_type"], "MX");
    assert_eq!(dns["url"], "dns://pulse.test/MX");
    for (body, field) in [
        (json!({"name": "t", "type": "tcp", "port": 25}), "host"),
        (
            json!({"name": "t", "type": "tcp", "host": "a.test"}),
            "port",
        ),
        (
            json!({"name": "t", "type": "tcp", "host": "a.test", "port": 70000}),
            "port",
        ),
        (
            json!({"name": "t", "type": "tcp", "host": "169.254.169.254", "port": 80}),
            "host",
        ),
        (
            json!({"name": "t", "type": "dns", "host": "a.test", "record_type": "SOA"}),
            "record_type",
        ),
        (
            json!({"name": "t", "type": "dns", "host": "a.test", "resolver": "nope"}),
            "resolver",
        ),
        (
            json!({"name": "t", "type": "dns", "host": "a.test", "resolver": "169.254.169.254:53"}),
            "resolver",
        ),
        (
            json!({"name": "t", "type": "smtp", "host": "a.test"}),
            "type",
        ),
        (
            json!({"name": "t", "type": "tcp", "host": "a.test", "port": 1,
                   "assertions": [{"source": "json_body", "property": "$.a", "comparison": "exists"}]}),
            "assertions[0].source",
        ),
    ] {
        let (status, err) = app.post("/checks", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {err}");
        assert_eq!(err["field"], field, "{body}: {err}");
    }
}

#[tokio::test]
async fn a_check_shows_each_of_its_locations_and_patch_moves_them() {
    let app = TestApp::spawn().await;
    let mut body = example();
    body["locations"] = json!(["eu", "us"]);
    body["alert_locations"] = json!("majority");
    let (status, check) = app.post("/checks", body).await;
    assert_eq!(status, StatusCode::CREATED, "{check}");
    assert_eq!(check["incident_open"], false);
    assert_eq!(check["alert_locations"], "majority");
    assert_eq!(check["location_strategy"], "all");
    let names = |c: &Value| -> Vec<String> {
        c["by_location"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                assert_eq!(l["last_status"], "unknown", "{l}");
                l["location"].as_str().unwrap().to_string()
            })
            .collect()
    };
    assert_eq!(names(&check), ["eu", "us"]);
    let id = check["id"].as_str().unwrap();
    let (status, patched) = app
        .patch(
            &format!("/checks/{id}"),
            json!({"locations": ["us", "ap"], "alert_locations": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(names(&patched), ["us", "ap"]);
    assert_eq!(patched["alert_locations"], 2);
    // A number above the locations listed, a bad name, a bad filter.
    let (status, err) = app
        .patch(&format!("/checks/{id}"), json!({"alert_locations": 3}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["field"], "alert_locations");
    let (status, err) = app
        .patch(&format!("/checks/{id}"), json!({"locations": ["EU West"]}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["field"], "locations");
    let (status, err) = app.get(&format!("/checks/{id}/runs?location=a%20b")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["field"], "location");
    let (status, runs) = app.get(&format!("/checks/{id}/runs?location=us")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(runs, json!([]));
    // Locations named by checks are listed, stale with no worker.
    let (status, locations) = app.get("/locations").await;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<(&str, &str, i64)> = locations
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["location"].as_str().unwrap(),
                l["status"].as_str().unwrap(),
                l["checks"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, [("ap", "stale", 1), ("us", "stale", 1)]);
}

#[tokio::test]
async fn a_deeply_nested_jsonpath_is_refused_at_once_and_health_keeps_answering() {
    // `$[?@[?@...]]` doubled its parse time per level on the request
    // threads: n=21 took 4.3 s, n=50 never finished.
    let app = TestApp::spawn().await;
    let health = {
        let http = reqwest::Client::new();
        let url = format!("{}/health", app.base);
        tokio::spawn(async move {
            let mut slowest = std::time::Duration::ZERO;
            for _ in 0..40 {
                let t = std::time::Instant::now();
                http.get(&url).send().await.unwrap();
                slowest = slowest.max(t.elapsed());
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            slowest
        })
    };
    for n in [21, 50, 200] {
        let path = format!("${}{}", "[?@".repeat(n), "]".repeat(n));
        let body = json!({"name": "n", "url": "http://127.0.0.1:9/",
            "assertions": [{"source": "json_body", "property": path, "comparison": "exists"}]});
        let (status, err) = app.post("/checks", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        assert_eq!(err["field"], "assertions[0].property", "{err}");
        assert!(err["error"].as_str().unwrap().contains("deep"), "{err}");
    }
    let slowest = health.await.unwrap();
    assert!(
        slowest < std::time::Duration::from_secs(1),
        "/health took {slowest:?} while JSONPaths were validated"
    );
}

#[tokio::test]
async fn checks_aimed_at_pulse_own_services_are_refused_at_create() {
    let app = TestApp::spawn().await;
    let port_of = |var: &str| {
        let u = url::Url::parse(&std::env::var(var).unwrap()).unwrap();
        (u.host_str().unwrap().to_string(), u.port().unwrap())
    };
    let (redis_host, redis_port) = port_of("PULSE_TEST_REDIS_URL");
    let (ch_host, ch_port) = port_of("PULSE_TEST_CLICKHOUSE_URL");
    let (pg_host, pg_port) = port_of("PULSE_TEST_DATABASE_URL");
    let api_port: u16 = app.base.rsplit(':').next().unwrap().parse().unwrap();
    for (host, port) in [
        (redis_host.as_str(), redis_port),
        ("localhost", redis_port),
        (pg_host.as_str(), pg_port),
        ("127.0.0.1", api_port),
    ] {
        let tcp = json!({"name": "x", "type": "tcp", "host": host, "port": port,
                         "send": "SET k v\r\n"});
        let (status, err) = app.post("/checks", tcp).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{host}:{port} {err}"
        );
        assert_eq!(err["field"], "host", "{err}");
        assert!(
            err["error"]
                .as_str()
                .unwrap()
                .contains("Pulse's own services"),
            "{err}"
        );
    }
    let sql = format!("http://{ch_host}:{ch_port}/?query=SELECT%201");
    let (status, err) = app
        .post(
            "/checks",
            json!({"name": "x", "url": sql, "method": "POST"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["field"], "url", "{err}");
    assert_eq!(app.get("/checks").await.1, json!([]), "nothing was stored");
}

/// A check's request headers as stored, unmasked.
async fn stored_headers(
    pool: &sqlx::PgPool,
    id: &str,
) -> std::collections::BTreeMap<String, String> {
    let (h,): (sqlx::types::Json<std::collections::BTreeMap<String, String>>,) =
        sqlx::query_as("SELECT headers FROM checks WHERE id = $1::uuid")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap();
    h.0
}

#[tokio::test]
async fn credential_headers_are_write_only_and_a_masked_patch_keeps_them() {
    let app = TestApp::spawn().await;
    let (status, created) = app
        .post(
            "/checks",
            json!({"name": "x", "url": "http://a.example.test/",
                   "headers": {"Authorization": "Bearer s3cret", "cookie": "sid=abc",
                               "Proxy-Authorization": "Basic cHg=", "X-Trace": "visible"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let shown = json!({"Authorization": "***", "cookie": "***",
                       "Proxy-Authorization": "***", "X-Trace": "visible"});
    assert_eq!(created["headers"], shown);
    let (_, read) = app.get(&format!("/checks/{id}")).await;
    assert_eq!(read["headers"], shown);
    let (_, list) = app.get("/checks").await;
    assert!(!list.to_string().contains("s3cret"), "{list}");

    let pool = pulse_store::pg::pool(&app.database_url, 2).unwrap();
    // Sending back what a read showed keeps the stored values.
    let (status, patched) = app
        .patch(
            &format!("/checks/{id}"),
            json!({"headers": read["headers"].clone()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let h = stored_headers(&pool, &id).await;
    assert_eq!(h["Authorization"], "Bearer s3cret");
    assert_eq!(h["cookie"], "sid=abc");
    // The mask keeps the value stored under the same name in any case.
    let (status, err) = app
        .patch(
            &format!("/checks/{id}"),
            json!({"headers": {"COOKIE": "***", "Authorization": "***"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{err}");
    assert_eq!(stored_headers(&pool, &id).await["COOKIE"], "sid=abc");
    // A new value replaces it; a mask with nothing stored is refused.
    let (status, _) = app
        .patch(
            &format!("/checks/{id}"),
            json!({"headers": {"Authorization": "Bearer new"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let h = stored_headers(&pool, &id).await;
    assert_eq!(h["Authorization"], "Bearer new");
    assert!(!h.contains_key("COOKIE"), "headers are replaced as a whole");
    let (status, err) = app
        .post(
            "/checks",
            json!({"name": "y", "url": "http://a.example.test/",
                                "headers": {"Authorization": "***"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["field"], "headers");
}

#[tokio::test]
async fn headers_named_in_secret_headers_are_write_only_too() {
    let app = TestApp::spawn().await;
    let (status, created) = app
        .post(
            "/checks",
            json!({"name": "x", "url": "http://a.example.test/",
                   "headers": {"X-Api-Key": "k-s3cret", "X-Trace": "visible"},
                   "secret_headers": ["x-api-key"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let shown = json!({"X-Api-Key": "***", "X-Trace": "visible"});
    assert_eq!(created["headers"], shown);
    assert_eq!(created["secret_headers"], json!(["x-api-key"]));
    let (_, read) = app.get(&format!("/checks/{id}")).await;
    assert_eq!(read["headers"], shown);
    let (_, list) = app.get("/checks").await;
    assert!(!list.to_string().contains("k-s3cret"), "{list}");
    let pool = pulse_store::pg::pool(&app.database_url, 2).unwrap();
    // What a read showed, sent back, keeps the value.
    let (status, patched) = app
        .patch(
            &format!("/checks/{id}"),
            json!({"headers": {"X-Api-Key": "***", "X-Trace": "changed"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(stored_headers(&pool, &id).await["X-Api-Key"], "k-s3cret");
    assert_eq!(stored_headers(&pool, &id).await["X-Trace"], "changed");
    // A header made secret in the same request may be sent masked; one
    // never secret is taken as the text "***".
    let (status, _) = app
        .patch(
            &format!("/checks/{id}"),
            json!({"secret_headers": ["X-Api-Key", "X-Trace"],
                   "headers": {"X-Api-Key": "***", "X-Trace": "***", "X-Other": "***"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let h = stored_headers(&pool, &id).await;
    assert_eq!(
        (h["X-Api-Key"].as_str(), h["X-Trace"].as_str()),
        ("k-s3cret", "changed")
    );
    assert_eq!(h["X-Other"], "***");
    for bad in [json!(["bad name"]), json!("X-Api-Key"), json!([1])] {
        let (status, err) = app
            .patch(&format!("/checks/{id}"), json!({ "secret_headers": bad }))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {err}");
        assert_eq!(err["field"], "secret_headers", "{bad}: {err}");
    }
}

#[tokio::test]
async fn a_check_has_a_description_of_up_to_a_thousand_characters() {
    let app = TestApp::spawn().await;
    let (status, created) = app
        .post(
            "/checks",
            json!({"name": "x", "url": "http://a.example.test/",
                   "description": "  Checkout API: call #shop-oncall  "}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["description"], "Checkout API: call #shop-oncall");
    let id = created["id"].as_str().unwrap().to_string();
    let (_, read) = app.get(&format!("/checks/{id}")).await;
    assert_eq!(read["description"], "Checkout API: call #shop-oncall");
    // Other edits keep it; 1,000 characters (not bytes) fit.
    let (_, patched) = app
        .patch(&format!("/checks/{id}"), json!({"interval_seconds": 120}))
        .await;
    assert_eq!(patched["description"], "Checkout API: call #shop-oncall");
    let long = "é".repeat(1000);
    let (status, patched) = app
        .patch(&format!("/checks/{id}"), json!({ "description": long }))
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["description"], long);
    for bad in [json!("x".repeat(1001)), json!("a\u{0}b"), json!(7)] {
        let (status, err) = app
            .patch(&format!("/checks/{id}"), json!({ "description": bad }))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        assert_eq!(err["field"], "description", "{err}");
    }
    // null clears it.
    let (_, cleared) = app
        .patch(&format!("/checks/{id}"), json!({ "description": null }))
        .await;
    assert_eq!(cleared["description"], "");
    // A check without one reads "".
    let (_, plain) = app
        .post(
            "/checks",
            json!({"name": "y", "url": "http://a.example.test/"}),
        )
        .await;
    assert_eq!(plain["description"], "");
}
