"""Every benchmark under scripts/bench runs at a tiny size, so none rots: each prints one JSON
object with the fields its issue names. (Figures are measured by running them at full size,
never asserted here.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from callcenter.testing.asterisk import AsteriskUnavailable, toolchain

ROOT = Path(__file__).parents[2]
BENCH = ROOT / "scripts" / "bench"

#: script -> (tiny arguments, fields the issue asks for)
TINY: dict[str, list[tuple[list[str], set[str]]]] = {
    "sms_fanout.py": [
        (["--citizens", "300"], {"citizens", "handed_to_gateway", "seconds", "messages_per_s"}),
        (["--citizens", "200", "--gateway", "kannel"], {"kannel_raw_per_s", "messages_per_s"}),
    ],
    "soak.py": [
        (
            ["--minutes", "0.05", "--capacity-s", "1", "--burst", "2", "--burst-s", "1"],
            {
                "requests",
                "errors",
                "p99_ms_first_minute",
                "p99_ms_last_minute",
                "rss_growth_pct",
                "lost",
                "duplicated",
                "burst_errors",
            },
        ),
    ],
    "reply_ingest.py": [
        (
            ["--replies", "90", "--concurrency", "4"],
            {"replies", "answers_recorded", "replies_per_s", "p50_ms", "p99_ms"},
        ),
    ],
    "import_citizens.py": [
        (["--rows", "2000"], {"rows", "imported", "rejected", "seconds", "rows_per_s", "copy_seconds"}),
    ],
    "rate_limit.py": [
        (
            ["--rate", "20", "--workers", "2", "--seconds", "2"],
            {"target_per_s", "measured_per_s", "max_in_any_second"},
        ),
    ],
    "ivr_concurrency.py": [
        (["--callers", "20"], {"callers", "completed", "answers", "agi_rtt_p50_ms", "agi_rtt_p99_ms"}),
    ],
    "dialer_pacing.py": [
        (
            ["--citizens", "40", "--channels", "5", "--cps", "10", "--seconds", "3"],
            {"max_in_progress", "target_cps", "measured_cps", "dialled_twice"},
        ),
    ],
    "web_pages.py": [
        (
            [
                "--sessions",
                "4",
                "--campaigns",
                "30",
                "--audit-rows",
                "200",
                "--pages",
                "40",
                "--rate",
                "20",
                "--seconds",
                "1",
            ],
            {"pages", "pages_per_s", "p50_ms", "p99_ms", "errors"},
        ),
    ],
    "real_asterisk_calls.py": [
        (["--calls", "2"], {"calls", "completed", "answers", "seconds"}),
    ],
    "real_asterisk_agents.py": [
        (["--agents", "2", "--callers", "4"], {"callers", "connected", "double_routed", "seconds"}),
    ],
    "acd_load.py": [
        (
            ["--agents", "4", "--callers", "10", "--agi-processes", "2", "--talk-s", "1"],
            {
                "callers",
                "connected",
                "abandoned",
                "lost",
                "double_routed",
                "callbacks_out_of_order",
                "wallboard_matches_recount",
                "routing_p99_ms",
                "event_to_desk_p99_ms",
                "wait_estimate_median_abs_error_s",
                "actual_wait_median_s",
            },
        ),
    ],
    "requests_load.py": [
        (
            ["--requests", "3000", "--municipalities", "8", "--busy-open", "300", "--samples", "20"],
            {"work_queue_p99_ms", "sla_recompute_s", "open311_get_p99_ms", "status_lookup_p99_ms"},
        ),
    ],
    "faults.py": [
        (
            ["--citizens", "60", "--faults", "postgres_restart,kill_serve", "--gap", "0", "--down", "1"],
            {
                "citizens",
                "replies_sent",
                "answers_recorded",
                "lost",
                "duplicated",
                "replies_during_db_outage",
                "sms_sent_twice",
                "recovery_s",
                "faults",
            },
        ),
    ],
    "results_scale.py": [
        (
            ["--citizens", "2000", "--questions", "3", "--municipalities", "12"],
            {
                "results_s",
                "crosstab_s",
                "rates_s",
                "export_parquet_s",
                "export_sav_s",
                "export_xlsx_s",
                "peak_rss_mb",
            },
        ),
    ],
}


def test_every_benchmark_script_has_a_tiny_run() -> None:
    scripts = {p.name for p in BENCH.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(TINY), "add the new benchmark to TINY (or remove the stale entry)"


@pytest.mark.parametrize(
    ("script", "args", "fields"),
    [(script, args, fields) for script, runs in TINY.items() for args, fields in runs],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_benchmark_runs_tiny_and_prints_one_json_object(
    script: str, args: list[str], fields: set[str]
) -> None:
    if not (BENCH / script).exists():
        pytest.fail(f"{script} is missing")
    if script in ("real_asterisk_calls.py", "real_asterisk_agents.py") or "kannel" in args:
        need_real_parts(kannel="kannel" in args)
    result = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout
    data = json.loads(lines[0])
    assert fields <= set(data), f"missing {fields - set(data)}"


def need_real_parts(*, kannel: bool) -> None:
    """Skip with a reason on a newcomer's machine; in CI the real parts must be there."""
    try:
        if kannel:
            if not Path("/usr/sbin/bearerbox").exists():
                raise AsteriskUnavailable("Kannel (Debian kannel, kannel-extras) is not installed")
        else:
            toolchain()
    except AsteriskUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"required in CI: {exc}")
        pytest.skip(str(exc))
