//! A few seconds of the real benchmark, so it keeps working. It asserts
//! that the benchmark ran and counted, never a speed.

use std::process::Command;

#[test]
fn a_short_benchmark_runs_and_counts() {
    let out = std::env::temp_dir().join(format!("pulse-bench-smoke-{}", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([
            "--checks",
            "20",
            "--interval",
            "1",
            "--duration",
            "3",
            "--warmup",
            "1",
            "--workers",
            "1",
            "--concurrency",
            "10",
            "--explain",
        ])
        .arg("--out")
        .arg(&out)
        .status()
        .expect("run bench");
    assert!(status.success(), "bench exited with {status}");
    let file = std::fs::read_dir(&out)
        .expect("results dir")
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "json"))
        .expect("a JSON result");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file.path()).unwrap()).unwrap();
    let r = &json["result"];
    assert!(r["runs_in_window"].as_u64().unwrap() > 0, "{r}");
    assert!(r["clickhouse_rows_total"].as_u64().unwrap() > 0);
    assert_eq!(
        r["target_hits_total"], r["clickhouse_rows_total"],
        "every execution stored"
    );
    assert_eq!(r["duplicated_slots"], 0);
    assert!(r["pipeline_cpu_per_run_us"].as_f64().unwrap() > 0.0);
    assert!(r["baseline"]["cpu_per_request_us"].as_f64().unwrap() > 0.0);
    // server, one worker, postgres, redis, clickhouse, target.
    assert_eq!(
        r["procs"].as_array().unwrap().len(),
        6,
        "every process measured"
    );
    assert_eq!(r["claim_plans"].as_array().unwrap().len(), 2);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn help_is_clap_help_for_both_benchmarks() {
    for args in [&["--help"][..], &["reports", "--help"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_bench"))
            .args(args)
            .output()
            .expect("run bench");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert!(text.contains("Usage: bench"), "{text}");
        assert!(text.contains("--checks"), "{text}");
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_bench"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&bad.stderr).contains("stack backtrace"));
}
