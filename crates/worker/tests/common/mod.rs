//! A whole Pulse stack for end-to-end tests: real server (API + scheduler)
//! and workers, in-process or as the real `worker` binary, on one test's
//! private namespace of the services.

#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use pulse_runtime::process::ServiceSettings;
use pulse_store::{ClickHouseDsn, ResultsStore, RunRow};
use pulse_testkit::TestEnv;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub struct Stack {
    pub env: TestEnv,
    pub base: String,
    pub http: reqwest::Client,
    pub results: ResultsStore,
    stops: Vec<CancellationToken>,
    lease_margin_ms: i64,
    stale_after: Duration,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for s in &self.stops {
            s.cancel();
        }
    }
}

pub fn services(env: &TestEnv) -> ServiceSettings {
    ServiceSettings::new(
        &env.database_url,
        &env.redis_url,
        &env.clickhouse_dsn,
        &env.redis_prefix,
    )
    .unwrap()
}

/// A worker's health URL.
pub fn worker_url(port: u16, path: &str) -> String {
    format!("http://127.0.0.1:{port}{path}")
}

pub fn worker_settings(env: &TestEnv) -> pulse_worker::Settings {
    let mut s = pulse_worker::Settings::with_services(services(env));
    s.flush_interval = Duration::from_millis(100);
    s.alerter_poll = Duration::from_millis(100);
    s.shutdown_grace = Duration::from_secs(3);
    s
}

impl Stack {
    /// A server with its scheduler (lease margin 1 s), and `workers`
    /// in-process workers.
    pub async fn start(workers: usize) -> Stack {
        Stack::start_on(TestEnv::new().await, workers).await
    }

    /// The same, on the given services (e.g. a private set for fault tests).
    pub async fn start_on(env: TestEnv, workers: usize) -> Stack {
        Stack::start_full(env, workers, 1000).await
    }

    pub async fn start_full(env: TestEnv, workers: usize, lease_margin_ms: i64) -> Stack {
        Stack::start_stale_after(env, workers, lease_margin_ms, Duration::from_secs(10)).await
    }

    /// The same, with the scheduler's `LOCATION_STALE_MS`.
    pub async fn start_stale_after(
        env: TestEnv,
        workers: usize,
        lease_margin_ms: i64,
        stale_after: Duration,
    ) -> Stack {
        let mut stack = Stack {
            stale_after,
            results: ResultsStore::new(&ClickHouseDsn::parse(&env.clickhouse_dsn).unwrap()),
            env,
            base: String::new(),
            http: reqwest::Client::new(),
            stops: Vec::new(),
            lease_margin_ms,
        };
        stack.base = stack.add_server(true).await;
        let pool = pulse_store::pg::pool(&stack.env.database_url, 1).unwrap();
        let key = pulse_store::pg::api_keys::ApiKeyStore::new(pool)
            .create("tests")
            .await
            .unwrap();
        stack.http = pulse_testkit::keyed_client(&key);
        for _ in 0..workers {
            stack.add_worker().await;
        }
        stack
    }

    /// Another server on the same services; returns its base URL.
    pub async fn add_server(&mut self, scheduler: bool) -> String {
        let mut settings = pulse_server::Settings::with_services(services(&self.env));
        settings.scheduler_enabled = scheduler;
        settings.scheduler.poll = Duration::from_millis(100);
        settings.scheduler.lease_margin_ms = self.lease_margin_ms;
        settings.scheduler.stale_after = self.stale_after;
        // Tests create checks in bulk; rate limits have tests of their own.
        settings.limits.per_key = 100_000;
        settings.limits.per_ip = 100_000;
        let stop = CancellationToken::new();
        let app = pulse_server::Application::build(settings, &stop)
            .await
            .unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run(stop.clone()));
        self.stops.push(stop);
        base
    }

    /// Another in-process worker; returns its health port and stop token.
    pub async fn add_worker(&mut self) -> (u16, CancellationToken) {
        self.add_worker_with(worker_settings(&self.env)).await
    }

    pub async fn add_worker_with(
        &mut self,
        settings: pulse_worker::Settings,
    ) -> (u16, CancellationToken) {
        let stop = CancellationToken::new();
        let worker = pulse_worker::Worker::build(settings, &stop).await.unwrap();
        let port = worker.port();
        tokio::spawn(worker.run(stop.clone()));
        self.stops.push(stop.clone());
        (port, stop)
    }

    /// The real `worker` binary, configured for this stack.
    pub fn spawn_worker_process(&self) -> tokio::process::Child {
        self.spawn_worker_process_with(&[])
    }

    /// The real `worker` binary with extra environment.
    pub fn spawn_worker_process_with(&self, extra: &[(&str, &str)]) -> tokio::process::Child {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_worker"))
            .env_clear()
            .env("DATABASE_URL", &self.env.database_url)
            .env("REDIS_URL", &self.env.redis_url)
            .env("CLICKHOUSE_DSN", &self.env.clickhouse_dsn)
            .env("REDIS_PREFIX", &self.env.redis_prefix)
            .env("WORKER_PORT", "0")
            .env("HOST", "127.0.0.1")
            .env("CLICKHOUSE_FLUSH_MS", "100")
            .env("RUST_LOG", "warn")
            .envs(extra.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn worker binary")
    }

    pub async fn create(&self, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}/checks", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        resp.json().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn get_text(&self, path: &str) -> String {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn patch(&self, id: &str, body: Value) -> Value {
        let resp = self
            .http
            .patch(format!("{}/checks/{id}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    pub async fn delete(&self, id: &str) {
        let resp = self
            .http
            .delete(format!("{}/checks/{id}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }

    /// Every stored run of a check, oldest first (empty while ClickHouse has
    /// none, or the table is not there yet).
    pub async fn runs(&self, id: &str) -> Vec<RunRow> {
        self.results
            .since(Uuid::parse_str(id).unwrap(), 0)
            .await
            .unwrap_or_default()
    }
}

pub fn check(name: &str, url: &str, extra: Value) -> Value {
    let mut body = json!({"name": name, "url": url, "interval_seconds": 1, "timeout_ms": 2000});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}
