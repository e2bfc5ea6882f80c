//! The worker's retention task against the real ClickHouse: it drops days
//! past `RESULTS_RETENTION_DAYS` as soon as it starts, keeps the rest, and
//! stops when cancelled.

use std::time::Duration;

use chrono::Utc;
use pulse_store::{ClickHouseDsn, ResultsStore, RunRow};
use pulse_testkit::{wait_until, TestEnv};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn row(check_id: Uuid, days_ago: i64) -> RunRow {
    let at = Utc::now() - chrono::Duration::days(days_ago);
    RunRow {
        id: Uuid::new_v4(),
        check_id,
        run_at: at,
        run_at_ms: at.timestamp_millis(),
        scheduled_at_ms: at.timestamp_millis(),
        status: "up".into(),
        failure_reason: None,
        latency_ms: 1,
        status_code: 200,
        error: None,
        worker: "w".into(),
        attempts: 1,
        ..pulse_store::RunRow::with_details(None)
    }
}

#[tokio::test]
async fn retention_task_drops_old_days_at_start_and_stops_when_cancelled() {
    let env = TestEnv::new().await;
    let results = ResultsStore::new(&ClickHouseDsn::parse(&env.clickhouse_dsn).unwrap());
    results.migrate().await.unwrap();
    let check = Uuid::new_v4();
    let today = row(check, 0);
    results
        .insert(&[row(check, 40), today.clone()])
        .await
        .unwrap();

    let stop = CancellationToken::new();
    let task = tokio::spawn(pulse_worker::retention::run(
        results.clone(),
        30,
        pulse_worker::retention::EVERY,
        stop.clone(),
    ));
    wait_until(
        Duration::from_secs(10),
        "the 40-day-old run dropped",
        || async { results.since(check, 0).await.unwrap().len() == 1 },
    )
    .await;
    assert_eq!(results.since(check, 0).await.unwrap()[0].id, today.id);

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("retention stops when cancelled")
        .unwrap();
}

#[tokio::test]
async fn rollup_retention_task_drops_old_days_of_the_rollups() {
    let env = TestEnv::new().await;
    let results = ResultsStore::new(&ClickHouseDsn::parse(&env.clickhouse_dsn).unwrap());
    results.migrate().await.unwrap();
    let check = Uuid::new_v4();
    let success = |days_ago| RunRow {
        status: "success".into(),
        ..row(check, days_ago)
    };
    results.insert(&[success(500), success(0)]).await.unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(pulse_worker::retention::run_rollups(
        results.clone(),
        400,
        pulse_worker::retention::EVERY,
        stop.clone(),
    ));
    let all_time = pulse_store::reports::Range {
        from: 0,
        to: Utc::now().timestamp() + 3600,
    };
    let runs = || async {
        results
            .aggregate(
                pulse_store::reports::Scope::Check(check, None),
                pulse_store::reports::Group::Overall,
                all_time,
            )
            .await
            .unwrap()
            .first()
            .map_or(0, |a| a.runs())
    };
    wait_until(
        Duration::from_secs(10),
        "the 500-day-old rollups dropped",
        || async { runs().await == 1 },
    )
    .await;
    // The raw runs are not the rollup task's business.
    assert_eq!(results.since(check, 0).await.unwrap().len(), 2);
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("retention stops when cancelled")
        .unwrap();
}
