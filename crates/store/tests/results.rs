//! ClickHouse results against the real (18.16) server: retention drops old
//! days and keeps recent ones, and every statement the store sends answers
//! the same on 18.16 and on current ClickHouse (chdb-core, via
//! scripts/chdb-check.py).

use std::path::Path;
use std::process::Command;

use chrono::{DateTime, Duration, Utc};
use pulse_store::results::compatibility_scenario;
use pulse_store::{ClickHouseDsn, ResultsStore, RunRow};
use pulse_testkit::TestEnv;
use uuid::Uuid;

async fn store() -> (ResultsStore, ClickHouseDsn) {
    let env = TestEnv::new().await;
    let dsn = ClickHouseDsn::parse(&env.clickhouse_dsn).unwrap();
    let store = ResultsStore::new(&dsn);
    store.migrate().await.unwrap();
    (store, dsn)
}

fn row(check_id: Uuid, at: DateTime<Utc>, status: &str) -> RunRow {
    RunRow {
        id: Uuid::new_v4(),
        check_id,
        run_at: at,
        run_at_ms: at.timestamp_millis(),
        scheduled_at_ms: at.timestamp_millis() - 7,
        status: status.into(),
        failure_reason: (status == "down").then(|| "status_code".into()),
        latency_ms: 42,
        status_code: if status == "down" { 503 } else { 200 },
        error: (status == "down").then(|| "it's \"down\"\\ again".into()),
        worker: "w-1".into(),
        attempts: 2,
        dns_ms: 1,
        connect_ms: 2,
        tls_ms: 3,
        ttfb_ms: 30,
        download_ms: 6,
        details: r#"{"assertions":[{"index":0,"passed":false,"actual":"it's \"down\""}]}"#.into(),
        location: "eu-west".into(),
    }
}

fn day(at: DateTime<Utc>) -> u32 {
    at.format("%Y%m%d").to_string().parse().unwrap()
}

#[tokio::test]
async fn retention_drops_days_older_than_the_limit_and_keeps_the_rest() {
    let (store, _) = store().await;
    let check = Uuid::new_v4();
    let now = Utc::now();
    let old = row(check, now - Duration::days(40), "up");
    let older = row(check, now - Duration::days(41), "down");
    let recent = row(check, now - Duration::days(29), "up");
    let today = row(check, now, "up");
    store
        .insert(&[old.clone(), older.clone(), recent.clone(), today.clone()])
        .await
        .unwrap();

    let dropped = store.drop_partitions_older_than(30).await.unwrap();

    assert_eq!(dropped, vec![day(older.run_at), day(old.run_at)]);
    let left: Vec<Uuid> = store
        .since(check, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, vec![recent.id, today.id]);
    // A second run (another worker, the next hour) finds nothing to drop.
    assert!(store
        .drop_partitions_older_than(30)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.since(check, 0).await.unwrap().len(), 2);
}

/// Runs each statement of the scenario on the 18.16 test server (the insert
/// through the store, as the worker writes), records the answers as CSV,
/// then has scripts/chdb-check.py run the same statements on the current
/// ClickHouse embedded in chdb-core and compare.
#[tokio::test]
async fn every_clickhouse_statement_answers_alike_on_18_16_and_current_clickhouse() {
    let env = TestEnv::new().await;
    let dsn = ClickHouseDsn::parse(&env.clickhouse_dsn).unwrap();
    let base = std::env::var("PULSE_TEST_CLICKHOUSE_URL").unwrap();
    let store = ResultsStore::new(&dsn);
    let now = Utc::now();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let rows = vec![
        row(a, now - Duration::days(40), "down"),
        row(a, now - Duration::days(2), "up"),
        row(a, now, "up"),
        row(b, now, "down"),
    ];
    let http = reqwest::Client::new();
    let mut database = "default";
    let mut recorded = Vec::new();
    for step in compatibility_scenario(&dsn.database, &rows) {
        let mut expected = None;
        if step.name == "insert" {
            store.insert(&rows).await.unwrap();
        } else {
            let sql = if step.answers {
                format!("{} FORMAT CSV", step.sql)
            } else {
                step.sql.clone()
            };
            let response = http
                .post(&base)
                .query(&[("database", database)])
                .body(sql)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body = response.text().await.unwrap();
            assert!(
                status.is_success(),
                "{} on 18.16: {status} {body}",
                step.name
            );
            expected = step.answers.then_some(body);
        }
        if step.name == "create_database" {
            database = &dsn.database;
        }
        if step.name == "old_partitions" {
            // The scenario exercises retention: the 40-day-old row's day.
            let old = day(rows[0].run_at).to_string();
            assert_eq!(expected.as_deref(), Some(format!("\"{old}\"\n").as_str()));
        }
        recorded.push(serde_json::json!({
            "name": step.name, "sql": step.sql, "answers": step.answers, "expected": expected,
        }));
    }
    let file = std::env::temp_dir().join(format!("pulse-chdb-{}.json", dsn.database));
    let scenario = serde_json::json!({ "database": dsn.database, "steps": recorded });
    std::fs::write(&file, serde_json::to_vec_pretty(&scenario).unwrap()).unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/chdb-check.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&file)
        .output()
        .expect("run python3 scripts/chdb-check.py");
    let _ = std::fs::remove_file(&file);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(out.status.success(), "chdb-check failed:\n{text}");
}
