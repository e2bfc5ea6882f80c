//! The benchmark's target: a minimal HTTP server, run as its own process
//! (`bench target`), so its CPU is measured apart. `GET /t/N` answers 200
//! and counts a hit for check N; `GET /stats` returns the counts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};

struct Hits(Vec<AtomicU64>);

pub async fn serve(checks: usize, delay_ms: u64) -> anyhow::Result<()> {
    let hits = Arc::new(Hits((0..checks).map(|_| AtomicU64::new(0)).collect()));
    let app = Router::new()
        .route(
            "/t/{n}",
            get(
                move |State(h): State<Arc<Hits>>, Path(n): Path<usize>| async move {
                    if let Some(c) = h.0.get(n) {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                    if delay_ms > 0 {
                        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                    }
                    "ok"
                },
            ),
        )
        .route(
            "/stats",
            get(|State(h): State<Arc<Hits>>| async move {
                Json(
                    h.0.iter()
                        .map(|c| c.load(Ordering::Relaxed))
                        .collect::<Vec<u64>>(),
                )
            }),
        )
        .with_state(hits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    // The parent reads the port from our first line of output.
    println!("{}", listener.local_addr()?.port());
    axum::serve(listener, app).await?;
    Ok(())
}
