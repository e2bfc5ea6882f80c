//! The SLO evaluator: every so often, for each check with `slo_alerts`,
//! reads its burn rates from the rollups and records one `slo_burn` alert
//! when the page rule starts firing and one `slo_recovered` alert when it
//! stops. The alerts go through the alerts outbox like every other alert
//! (the alerter signs and delivers them). One server at a time evaluates:
//! each round holds a Postgres advisory lock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use pulse_core::slo::{step, SloStep, BURN_WINDOWS};
use pulse_core::{AlertKind, AlertPayload};
use pulse_store::pg::incidents::{IncidentStore, SloAlert};
use pulse_store::ResultsStore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often SLOs are evaluated.
pub const EVERY: Duration = Duration::from_secs(30);

/// Checks asked of ClickHouse per query.
const CHUNK: usize = 1000;

/// What one round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Another process held the lock: nothing was evaluated.
    pub skipped: bool,
    pub evaluated: usize,
    pub opened: usize,
    pub closed: usize,
}

/// Evaluates every SLO once, as of `now`.
pub async fn evaluate_once(
    store: &IncidentStore,
    results: &ResultsStore,
    now: DateTime<Utc>,
) -> pulse_store::Result<Round> {
    let Some(mut tx) = store.begin_slo_round().await? else {
        return Ok(Round {
            skipped: true,
            ..Round::default()
        });
    };
    IncidentStore::drop_stale_breaches(&mut tx).await?;
    let checks = IncidentStore::slo_checks(&mut tx).await?;
    let mut round = Round {
        evaluated: checks.len(),
        ..Round::default()
    };
    for chunk in checks.chunks(CHUNK) {
        let ids: Vec<Uuid> = chunk.iter().map(|c| c.id).collect();
        let rows = results.burn_counts(&ids, now).await?;
        for check in chunk {
            let key = check.id.to_string();
            let counts = rows
                .iter()
                .find(|r| r.key == key)
                .map(crate::api::window_counts)
                .unwrap_or_default();
            let slo = check.slo.0;
            let (kind, rule, error) = match step(&slo, &counts, check.open_rule.is_some()) {
                SloStep::Nothing => continue,
                SloStep::Open(rule) => {
                    round.opened += 1;
                    let rule = serde_json::to_value(rule)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    let why = pulse_core::slo::page(&slo, &counts)
                        .map(|r| r.describe())
                        .unwrap_or_default();
                    (AlertKind::SloBurn, rule, why.to_string())
                }
                SloStep::Close => {
                    round.closed += 1;
                    (
                        AlertKind::SloRecovered,
                        check.open_rule.clone().unwrap_or_default(),
                        "error budget burn back under the page thresholds".to_string(),
                    )
                }
            };
            let id = Uuid::new_v4();
            let mut payload = serde_json::to_value(AlertPayload {
                alert_id: id,
                check_id: check.id,
                check_name: check.name.clone(),
                url: pulse_core::redact::redact_url_str(&check.url),
                kind,
                status: kind.as_str().to_string(),
                error: Some(error.clone()),
                consecutive_fails: 0,
                timestamp: now,
                location: None,
                locations: Vec::new(),
            })
            .unwrap_or_default();
            if let Some(obj) = payload.as_object_mut() {
                let rates: serde_json::Map<String, serde_json::Value> = BURN_WINDOWS
                    .iter()
                    .enumerate()
                    .map(|(i, (name, _))| {
                        let rate = slo.burn_rate(counts.made[i], counts.failed[i]);
                        (name.to_string(), serde_json::json!(rate))
                    })
                    .collect();
                obj.insert("slo".into(), serde_json::json!(slo));
                obj.insert("rule".into(), serde_json::json!(rule));
                obj.insert("burn_rates".into(), serde_json::Value::Object(rates));
            }
            let alert = SloAlert {
                id,
                check_id: check.id,
                kind,
                rule,
                error,
                payload,
                webhook_url: check.webhook_url.clone(),
            };
            IncidentStore::record_slo_alert(&mut tx, &alert).await?;
            tracing::info!(check_id = %check.id, kind = kind.as_str(), "slo alert");
        }
    }
    tx.commit().await.map_err(pulse_store::StoreError::from)?;
    Ok(round)
}

/// Evaluates every [`EVERY`] until `shutdown`.
pub async fn run(store: IncidentStore, results: ResultsStore, shutdown: CancellationToken) {
    loop {
        if let Err(e) = evaluate_once(&store, &results, Utc::now()).await {
            tracing::warn!(error = %e, "slo evaluation failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.cancelled() => break,
        }
    }
}
