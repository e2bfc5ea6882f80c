#!/usr/bin/env python3
"""Runs Pulse's ClickHouse statements on current ClickHouse, in-process.

    python3 scripts/chdb-check.py SCENARIO.json

SCENARIO.json is written by the store's test
`every_clickhouse_statement_answers_alike_on_18_16_and_current_clickhouse`
(crates/store/tests/results.rs): every statement the store sends, built by
`pulse_store::results::compatibility_scenario`, with the answers ClickHouse
18.16 (the test server) gave, as CSV. This script runs the same statements,
in order, in a chdb-core session (ClickHouse 26.x embedded) and fails if one
is rejected or answers differently. Installs chdb-core with pip when missing.
"""

import json
import subprocess
import sys
import tempfile


def load_chdb():
    try:
        from chdb import session  # noqa: F401
    except ImportError:
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "chdb-core"]
        print("chdb-check: installing chdb-core", file=sys.stderr)
        if subprocess.run(pip, capture_output=True).returncode != 0:
            # Debian's system python (PEP 668) refuses without this.
            subprocess.run(pip + ["--break-system-packages"], check=True)
    from chdb import session

    return session


def normalize(text, ordered):
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines if ordered else sorted(lines)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    scenario = json.load(open(sys.argv[1]))
    session = load_chdb()
    failures = []
    with tempfile.TemporaryDirectory(prefix="pulse-chdb-") as path:
        s = session.Session(path)
        version = str(s.query("SELECT version()", "CSV")).strip().strip('"')
        for step in scenario["steps"]:
            name, sql = step["name"], step["sql"]
            try:
                if step["answers"]:
                    got = str(s.query(sql, "CSV"))
                else:
                    s.query(sql)
            except Exception as e:  # chdb raises its own error types
                failures.append(f"{name}: rejected: {str(e).strip()}\n  sql: {sql}")
                continue
            if name == "create_database":
                s.query(f"USE `{scenario['database']}`")
            if step["answers"]:
                ordered = "ORDER BY" in sql
                want = normalize(step["expected"], ordered)
                have = normalize(got, ordered)
                if want != have:
                    failures.append(
                        f"{name}: answers differ\n  sql: {sql}\n"
                        f"  18.16: {want}\n  {version}: {have}"
                    )
        s.close()
    steps = len(scenario["steps"])
    if failures:
        for f in failures:
            print(f"chdb-check: {f}", file=sys.stderr)
        sys.exit(f"chdb-check: {len(failures)} of {steps} statements differ on ClickHouse {version}")
    print(f"chdb-check: {steps} statements agree on ClickHouse 18.16 and {version}")


if __name__ == "__main__":
    main()
