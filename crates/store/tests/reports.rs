//! The rollups against the raw runs they are fed from, on ClickHouse 18.16:
//! generated runs are loaded straight into `check_runs`, then every figure
//! read from the rollups is compared with the same figure computed from the
//! raw table (counts exactly, percentiles within quantileTiming's
//! precision).

use chrono::Utc;
use clickhouse::{Client, Row};
use pulse_core::report::MinuteRuns;
use pulse_store::reports::{
    generated_check_id, Group, Range, Scope, CHECKS_TABLE, HOUR_TABLE, MINUTE_TABLE,
};
use pulse_store::{ClickHouseDsn, ResultsStore};
use pulse_testkit::TestEnv;
use serde::Deserialize;

struct Fixture {
    store: ResultsStore,
    raw: Client,
    /// Start of the generated runs (a day boundary, two days ago).
    from: i64,
    _env: TestEnv,
}

const CHECKS: u64 = 3;
const RUNS: u64 = 3 * 2 * 86_400 / 20;

async fn fixture() -> Fixture {
    let env = TestEnv::new().await;
    let dsn = ClickHouseDsn::parse(&env.clickhouse_dsn).unwrap();
    let store = ResultsStore::new(&dsn);
    store.migrate().await.unwrap();
    let raw = Client::default()
        .with_url(&dsn.url)
        .with_user(&dsn.user)
        .with_password(secrecy::ExposeSecret::expose_secret(&dsn.password))
        .with_database(&dsn.database)
        .with_validation(false);
    let from = Utc::now().timestamp().div_euclid(86_400) * 86_400 - 2 * 86_400;
    // Three checks, a run every 20 s each for two days, two locations;
    // loaded in two inserts, as the views see several blocks.
    store
        .generate_runs(CHECKS, 0, RUNS / 2, from, 20, 2)
        .await
        .unwrap();
    store
        .generate_runs(CHECKS, RUNS / 2, RUNS - RUNS / 2, from, 20, 2)
        .await
        .unwrap();
    Fixture {
        store,
        raw,
        from,
        _env: env,
    }
}

#[derive(Debug, Row, Deserialize)]
struct RawCounts {
    success: u64,
    degraded: u64,
    fail: u64,
    timeout: u64,
    error: u64,
    missed: u64,
}

async fn raw_counts(f: &Fixture, check: uuid::Uuid, location: Option<&str>, r: Range) -> RawCounts {
    f.raw
        .query(
            "SELECT countIf(status = 'success'), countIf(status = 'degraded'), \
             countIf(status = 'fail'), countIf(status = 'timeout'), countIf(status = 'error'), \
             countIf(status = 'missed') FROM check_runs WHERE check_id = ? \
             AND (? = 0 OR location = ?) AND run_at >= toDateTime(?) AND run_at < toDateTime(?)",
        )
        .bind(check)
        .bind(u8::from(location.is_some()))
        .bind(location.unwrap_or_default())
        .bind(r.from as u32)
        .bind(r.to as u32)
        .fetch_one()
        .await
        .unwrap()
}

/// The latencies of the runs made, sorted.
async fn raw_latencies(f: &Fixture, check: uuid::Uuid, r: Range) -> Vec<u32> {
    let mut v: Vec<u32> = f
        .raw
        .query(
            "SELECT latency_ms FROM check_runs WHERE check_id = ? AND status != 'missed' \
             AND run_at >= toDateTime(?) AND run_at < toDateTime(?)",
        )
        .bind(check)
        .bind(r.from as u32)
        .bind(r.to as u32)
        .fetch_all()
        .await
        .unwrap();
    v.sort_unstable();
    v
}

fn assert_counts(a: &pulse_store::reports::Aggregate, raw: &RawCounts) {
    assert_eq!(
        [a.success, a.degraded, a.fail, a.timeout, a.error, a.missed],
        [
            raw.success,
            raw.degraded,
            raw.fail,
            raw.timeout,
            raw.error,
            raw.missed
        ]
    );
}

/// quantileTiming's documented precision: exact below 1,024 ms, within
/// 16 ms above. Its rank may differ from the nearest rank by one value.
fn assert_close(p: f64, got: f64, sorted: &[u32]) {
    let n = sorted.len();
    let rank = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
    let near = [rank.saturating_sub(1), rank, (rank + 1).min(n - 1)];
    let ok = near
        .iter()
        .any(|&i| (got - f64::from(sorted[i])).abs() <= 16.0);
    assert!(
        ok,
        "p{p}: {got} is not within 16 ms of {:?}",
        near.map(|i| sorted[i])
    );
}

#[tokio::test]
async fn rollup_counts_and_percentiles_match_the_raw_runs() {
    let f = fixture().await;
    let check = generated_check_id(1);
    // Edges inside hours: the hour table answers the middle, the minute
    // table the edges.
    for range in [
        Range {
            from: f.from + 7 * 60,
            to: f.from + 86_400 + 3 * 3600 + 33 * 60,
        },
        Range {
            from: f.from + 60,
            to: f.from + 1800,
        },
        Range {
            from: f.from,
            to: f.from + 2 * 86_400,
        },
    ] {
        let all = f
            .store
            .aggregate(Scope::Check(check, None), Group::Overall, range)
            .await
            .unwrap();
        assert_eq!(all.len(), 1);
        let raw = raw_counts(&f, check, None, range).await;
        assert_counts(&all[0], &raw);
        let sorted = raw_latencies(&f, check, range).await;
        assert_eq!(all[0].made() as usize, sorted.len());
        for (i, p) in [0.5, 0.95, 0.99].into_iter().enumerate() {
            assert_close(p, all[0].latency_ms[i], &sorted);
        }

        let by_location = f
            .store
            .aggregate(Scope::Check(check, None), Group::ByLocation, range)
            .await
            .unwrap();
        assert_eq!(
            by_location
                .iter()
                .map(|a| a.key.as_str())
                .collect::<Vec<_>>(),
            ["loc-0", "loc-1"]
        );
        for a in &by_location {
            assert_counts(a, &raw_counts(&f, check, Some(&a.key), range).await);
        }
        let one_location = f
            .store
            .aggregate(Scope::Check(check, Some("loc-1")), Group::Overall, range)
            .await
            .unwrap();
        assert_eq!(one_location[0].made(), by_location[1].made());
    }
}

#[tokio::test]
async fn every_check_s_figures_come_in_one_answer() {
    let f = fixture().await;
    let range = Range {
        from: f.from + 3600,
        to: f.from + 86_400,
    };
    let rows = f.store.all_checks(range).await.unwrap();
    assert_eq!(rows.len(), CHECKS as usize);
    for i in 0..CHECKS {
        let id = generated_check_id(i);
        let row = rows.iter().find(|r| r.key == id.to_string()).unwrap();
        assert_counts(row, &raw_counts(&f, id, None, range).await);
        // Minutes with runs: a run every 20 s, so all of them.
        assert_eq!(row.minutes_made, ((range.to - range.from) / 60) as u64);
        let (made, down): (u64, u64) = f
            .raw
            .query(
                "SELECT uniqExactIf(intDiv(toUInt32(run_at), 60), status != 'missed'), \
                    uniqExactIf(intDiv(toUInt32(run_at), 60), status IN ('fail', 'timeout', 'error')) \
                 FROM check_runs WHERE check_id = ? AND run_at >= ? AND run_at < ?",
            )
            .bind(id)
            .bind(range.from as u32)
            .bind(range.to as u32)
            .fetch_one()
            .await
            .unwrap();
        assert_eq!((row.minutes_made, row.minutes_down), (made, down), "{id}");
        assert!(down > 0, "the generated runs fail now and then");
    }
}

#[derive(Debug, Row, Deserialize, PartialEq)]
struct RawBucket {
    bucket: u32,
    made: u64,
    down: u64,
}

#[tokio::test]
async fn series_buckets_and_minutes_match_the_raw_runs() {
    let f = fixture().await;
    let check = generated_check_id(2);
    let range = Range {
        from: f.from + 3600,
        to: f.from + 2 * 3600,
    };
    for bucket in [60, 300] {
        let series = f.store.series(check, None, range, bucket).await.unwrap();
        let raw: Vec<RawBucket> = f
            .raw
            .query(
                "SELECT toUInt32(intDiv(toUInt32(run_at), ?) * ?) AS bucket, countIf(status != 'missed'), \
                 countIf(status IN ('fail', 'timeout', 'error')) FROM check_runs \
                 WHERE check_id = ? AND run_at >= toDateTime(?) AND run_at < toDateTime(?) \
                 GROUP BY bucket ORDER BY bucket",
            )
            .bind(bucket as u32)
            .bind(bucket as u32)
            .bind(check)
            .bind(range.from as u32)
            .bind(range.to as u32)
            .fetch_all()
            .await
            .unwrap();
        assert_eq!(series.len(), raw.len());
        for (s, r) in series.iter().zip(&raw) {
            assert_eq!(s.key, r.bucket.to_string());
            assert_eq!((s.made(), s.fail + s.timeout + s.error), (r.made, r.down));
        }
        if bucket == 60 {
            let (minutes, prior) = f.store.minutes(check, None, range).await.unwrap();
            let got: Vec<RawBucket> = minutes
                .iter()
                .map(|m| RawBucket {
                    bucket: m.minute,
                    made: m.made,
                    down: m.down,
                })
                .collect();
            assert_eq!(got, raw);
            assert_eq!(prior.unwrap().minute as i64, range.from - 60);
        }
    }
    // Hourly buckets come from the hour table and agree with the minutes.
    let day = Range {
        from: f.from,
        to: f.from + 86_400,
    };
    let hours = f.store.series(check, None, day, 3600).await.unwrap();
    let minutes = f.store.series(check, None, day, 60).await.unwrap();
    assert_eq!(hours.len(), 24);
    assert_eq!(
        hours.iter().map(|h| h.made()).sum::<u64>(),
        minutes.iter().map(|m| m.made()).sum::<u64>()
    );
}

#[tokio::test]
async fn every_check_s_minutes_in_one_query_are_each_check_s_own() {
    let f = fixture().await;
    let range = Range {
        from: f.from + 3600,
        to: f.from + 86_400 + 7200,
    };
    let ids: Vec<uuid::Uuid> = (0..CHECKS).map(generated_check_id).collect();
    let mut asked = ids.clone();
    asked.push(uuid::Uuid::nil());
    let all = f.store.checks_minutes(&asked, range).await.unwrap();
    assert_eq!(all.len(), ids.len(), "a check without runs has no entry");
    for id in ids {
        let (minutes, prior) = f.store.minutes(id, None, range).await.unwrap();
        let own: Vec<MinuteRuns> = minutes
            .into_iter()
            .filter(|m| m.made > 0)
            .map(MinuteRuns::from)
            .collect();
        let got = &all[&id];
        assert!(own.len() > 1000, "{}", own.len());
        assert_eq!(got.minutes.len(), own.len());
        for (g, o) in got.minutes.iter().zip(&own) {
            assert_eq!((g.minute, g.state()), (o.minute, o.state()));
        }
        let prior = prior.map(MinuteRuns::from);
        assert_eq!(
            got.prior.map(|p| (p.minute, p.state())),
            prior.map(|p| (p.minute, p.state()))
        );
        assert_eq!(got.prior.unwrap().minute, range.from - 60);
    }
    assert!(f.store.checks_minutes(&[], range).await.unwrap().is_empty());
}

#[tokio::test]
async fn burn_counts_match_the_raw_runs_of_each_window() {
    let f = fixture().await;
    let check = generated_check_id(0);
    let now = Utc::now();
    // Runs in the last minutes too (generated check 0 of 1 is check 0).
    f.store
        .generate_runs(1, 0, 40, now.timestamp() - 39 * 60, 60, 1)
        .await
        .unwrap();
    let rows = f.store.burn_counts(&[check], now).await.unwrap();
    assert_eq!(rows.len(), 1);
    let end = now.timestamp().div_euclid(60) * 60 + 60;
    for (i, (name, secs)) in pulse_core::slo::BURN_WINDOWS.iter().enumerate() {
        let range = Range {
            from: end - i64::from(*secs),
            to: end,
        };
        let raw = raw_counts(&f, check, None, range).await;
        let made = raw.success + raw.degraded + raw.fail + raw.timeout + raw.error;
        assert_eq!(rows[0].made[i], made, "{name}");
        assert_eq!(
            rows[0].down[i],
            raw.fail + raw.timeout + raw.error,
            "{name}"
        );
    }
    assert!(rows[0].made[1] >= 29, "{:?}", rows[0].made);
}

#[tokio::test]
async fn rollup_retention_drops_old_months_of_both_rollups() {
    let f = fixture().await;
    // 100 runs of check 0, 100 days ago, beside the fixture's recent ones.
    let old = Utc::now().timestamp() - 100 * 86_400;
    f.store.generate_runs(1, 0, 100, old, 60, 1).await.unwrap();
    let check = generated_check_id(0);
    let figures = |from: i64, to: i64| {
        let store = f.store.clone();
        async move {
            store
                .aggregate(
                    Scope::Check(check, None),
                    Group::Overall,
                    Range { from, to },
                )
                .await
                .unwrap()
        }
    };
    let old_range = (old - 60, old + 7200);
    assert_eq!(figures(old_range.0, old_range.1).await[0].runs(), 100);
    // Keeping 400 days drops nothing; keeping 30 drops the old month(s).
    assert!(f
        .store
        .drop_rollup_partitions_older_than(400)
        .await
        .unwrap()
        .is_empty());
    let dropped = f.store.drop_rollup_partitions_older_than(30).await.unwrap();
    let tables: std::collections::BTreeSet<_> = dropped.iter().map(|d| d.0).collect();
    assert_eq!(
        tables,
        [HOUR_TABLE, MINUTE_TABLE, CHECKS_TABLE]
            .into_iter()
            .collect()
    );
    assert!(figures(old_range.0, old_range.1).await.is_empty());
    assert!(!figures(f.from, f.from + 86_400).await.is_empty());
}

#[derive(Debug, Row, Deserialize, PartialEq)]
struct RawHour {
    hour: u32,
    success: u64,
    degraded: u64,
    down: u64,
}

#[tokio::test]
async fn status_hours_match_the_raw_runs_of_every_check() {
    let f = fixture().await;
    let range = Range {
        from: f.from + 3600,
        to: f.from + 7 * 3600,
    };
    let rows = f.store.status_hours(range).await.unwrap();
    assert_eq!(rows.len(), CHECKS as usize);
    for row in rows {
        let raw: Vec<RawHour> = f
            .raw
            .query(
                "SELECT toUInt32(intDiv(toUInt32(run_at), 3600) * 3600) AS hour, \
                 countIf(status = 'success'), countIf(status = 'degraded'), \
                 countIf(status IN ('fail', 'timeout', 'error')) FROM check_runs \
                 WHERE check_id = ? AND run_at >= toDateTime(?) AND run_at < toDateTime(?) \
                 GROUP BY hour ORDER BY hour",
            )
            .bind(row.check_id)
            .bind(range.from as u32)
            .bind(range.to as u32)
            .fetch_all()
            .await
            .unwrap();
        assert_eq!(raw.len(), 6, "six hours of runs");
        let mut got: Vec<RawHour> = (0..row.hours.len())
            .map(|i| RawHour {
                hour: row.hours[i],
                success: row.success[i],
                degraded: row.degraded[i],
                down: row.down[i],
            })
            .collect();
        got.sort_by_key(|h| h.hour);
        assert_eq!(got, raw, "{}", row.check_id);
    }
}
