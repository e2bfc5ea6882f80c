//! The `server` binary at start: a permanent error (missing database,
//! unknown role, wrong Redis password) fails at once naming the service,
//! its host:port and the cause; a service that is only not there yet is
//! retried with lines naming the same; SIGTERM while waiting stops it
//! promptly, even in the middle of a connection attempt.

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pulse_testkit::{free_port, wait_until, TestEnv};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};

/// The server binary, its stdout and stderr gathered as they come.
struct Server {
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Server {
    fn start(database_url: &str, redis_url: &str, clickhouse_dsn: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("REDIS_URL", redis_url)
            .env("CLICKHOUSE_DSN", clickhouse_dsn)
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        gather(child.stdout.take().unwrap(), output.clone());
        gather(child.stderr.take().unwrap(), output.clone());
        Server { child, output }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits up to `limit` for the process to exit.
    async fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => {
                // Let the readers drain what is left in the pipes.
                tokio::time::sleep(Duration::from_millis(100)).await;
                status.unwrap()
            }
            Err(_) => panic!(
                "server still running after {limit:?}; output:\n{}",
                self.output()
            ),
        }
    }

    fn sigterm(&self) {
        let pid = self.child.id().unwrap().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
    }
}

/// Appends what `pipe` yields to `sink` until it closes.
fn gather(mut pipe: impl AsyncRead + Unpin + Send + 'static, sink: Arc<Mutex<String>>) {
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
}

fn with_path(url: &str, path: &str) -> String {
    let mut url = url::Url::parse(url).unwrap();
    url.set_path(path);
    url.to_string()
}

fn pg_addr(url: &str) -> String {
    let url = url::Url::parse(url).unwrap();
    format!("{}:{}", url.host_str().unwrap(), url.port().unwrap())
}

#[tokio::test]
async fn a_missing_database_fails_at_once_naming_postgres_and_the_cause() {
    let env = TestEnv::new().await;
    let url = with_path(&env.database_url, "no_such_database");
    let started = Instant::now();
    let mut server = Server::start(&url, &env.redis_url, &env.clickhouse_dsn);

    let status = server.exit_within(Duration::from_secs(10)).await;

    assert!(!status.success());
    assert!(started.elapsed() < Duration::from_secs(5));
    let out = server.output();
    assert!(
        out.contains(&format!("postgres at {}", pg_addr(&url))),
        "{out}"
    );
    assert!(out.contains("\"no_such_database\" does not exist"), "{out}");
}

#[tokio::test]
async fn an_unknown_postgres_role_fails_at_once() {
    let env = TestEnv::new().await;
    let mut url = url::Url::parse(&env.database_url).unwrap();
    url.set_username("nobody_here").unwrap();
    url.set_password(Some("secret-word")).unwrap();
    let started = Instant::now();
    let mut server = Server::start(url.as_str(), &env.redis_url, &env.clickhouse_dsn);

    let status = server.exit_within(Duration::from_secs(10)).await;

    assert!(!status.success());
    assert!(started.elapsed() < Duration::from_secs(5));
    let out = server.output();
    assert!(out.contains("role \"nobody_here\" does not exist"), "{out}");
    assert!(
        !out.contains("secret-word"),
        "password in the output: {out}"
    );
}

#[tokio::test]
async fn a_wrong_redis_password_fails_at_once_naming_redis() {
    let env = TestEnv::new().await;
    let port = free_port();
    let mut redis = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--requirepass",
            "right-one",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server (installed by scripts/services.sh)");
    wait_until(Duration::from_secs(5), "redis-server up", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    let redis_url = format!("redis://:wrong-one@127.0.0.1:{port}");
    let started = Instant::now();
    let mut server = Server::start(&env.database_url, &redis_url, &env.clickhouse_dsn);

    let status = server.exit_within(Duration::from_secs(10)).await;

    assert!(!status.success());
    assert!(started.elapsed() < Duration::from_secs(5));
    let out = server.output();
    assert!(out.contains(&format!("redis at 127.0.0.1:{port}")), "{out}");
    assert!(out.contains("authentication failed"), "{out}");
    assert!(!out.contains("wrong-one"), "password in the output: {out}");
    let _ = redis.kill().await;
}

#[tokio::test]
async fn retries_name_host_port_and_cause_and_sigterm_stops_the_wait() {
    let env = TestEnv::new().await;
    // Nothing listens there: refused, which is worth retrying.
    let port = free_port();
    let url = format!("postgres://postgres:hidden-word@127.0.0.1:{port}/pulse");
    let mut server = Server::start(&url, &env.redis_url, &env.clickhouse_dsn);
    wait_until(Duration::from_secs(10), "a retry line", || async {
        server.output().contains("dependency not ready")
    })
    .await;
    let out = server.output();
    assert!(out.contains("\"what\":\"postgres\""), "{out}");
    assert!(
        out.contains(&format!("\"addr\":\"127.0.0.1:{port}\"")),
        "{out}"
    );
    assert!(out.to_lowercase().contains("refused"), "{out}");
    assert!(
        !out.contains("hidden-word"),
        "password in the output: {out}"
    );

    let sent = Instant::now();
    server.sigterm();
    let status = server.exit_within(Duration::from_secs(5)).await;
    assert!(status.success(), "{status:?}: {}", server.output());
    assert!(sent.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn sigterm_interrupts_a_connection_attempt_that_hangs() {
    let env = TestEnv::new().await;
    // Accepts connections and never answers: an attempt waits on it.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let held = accepted.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = silent.accept().await {
            held.lock().unwrap().push(conn);
        }
    });
    let mut server = Server::start(
        &env.database_url,
        &format!("redis://127.0.0.1:{port}"),
        &env.clickhouse_dsn,
    );
    wait_until(Duration::from_secs(10), "the server connecting", || async {
        !accepted.lock().unwrap().is_empty()
    })
    .await;

    let sent = Instant::now();
    server.sigterm();
    let status = server.exit_within(Duration::from_secs(5)).await;
    assert!(status.success(), "{status:?}: {}", server.output());
    assert!(sent.elapsed() < Duration::from_secs(2));
}
