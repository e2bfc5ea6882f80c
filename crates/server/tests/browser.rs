//! The dashboard in a real browser: a server (with its scheduler), a
//! worker and a local target site on this test's services, driven by
//! `scripts/e2e/dashboard.py` (Python playwright and Debian's headless
//! chromium, installed by `scripts/browser-deps.sh` when missing). The
//! script signs in, creates checks through the form, finds a failed
//! assertion, pauses a check and reads the public status page signed out,
//! saving a screenshot of every step at desktop and phone widths in
//! `target/screenshots/` (`make screenshots`).

use std::path::PathBuf;
use std::time::Duration;

use pulse_runtime::process::ServiceSettings;
use pulse_store::pg::api_keys::ApiKeyStore;
use pulse_testkit::{Target, TestEnv};
use tokio_util::sync::CancellationToken;

/// Where the screenshots go: `PULSE_SCREENSHOTS`, else the workspace's
/// `target/screenshots`.
fn screenshots() -> PathBuf {
    std::env::var_os("PULSE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_creates_checks_sees_a_failure_pauses_and_reads_the_status_page() {
    let env = TestEnv::new().await;
    let services = ServiceSettings::new(
        &env.database_url,
        &env.redis_url,
        &env.clickhouse_dsn,
        &env.redis_prefix,
    )
    .unwrap();
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();

    let mut settings = pulse_server::Settings::with_services(services.clone());
    settings.scheduler.poll = Duration::from_millis(100);
    let app = pulse_server::Application::build(settings, &stop)
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let key = ApiKeyStore::new(app.services().pool.clone())
        .create("browser")
        .await
        .unwrap();
    tokio::spawn(app.run(stop.clone()));

    let mut worker = pulse_worker::Settings::with_services(services);
    worker.flush_interval = Duration::from_millis(100);
    worker.alerter_poll = Duration::from_millis(100);
    let worker = pulse_worker::Worker::build(worker, &stop).await.unwrap();
    tokio::spawn(worker.run(stop.clone()));

    let target = Target::start().await;
    let out = screenshots();
    std::fs::create_dir_all(&out).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/e2e/dashboard.py");
    let run = tokio::process::Command::new("python3")
        .arg(&script)
        .args(["--base", &base, "--key", &key, "--target", &target.url("")])
        .arg("--out")
        .arg(&out)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(110), run)
        .await
        .expect("the browser flow took over 110 s")
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for step in ["01-sign-in", "03-list", "04-failing-check", "07-status"] {
        for width in ["desktop", "phone"] {
            let png = out.join(format!("{step}-{width}.png"));
            assert!(png.exists(), "{} missing", png.display());
        }
    }
}
