"""The benchmarks import, and their pure parts compute sane figures on small inputs."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

from bench import BENCHMARKS
from bench.docs import END, START, Result, update_results
from bench.figure import CANNOT_RUN, CannotRun, Figure, parse_figure_line, run_benchmark
from bench.lab_memory import tree_memory
from bench.latency_exactness import (
    alert_threshold_ms,
    judge_cases,
    synthetic_cases,
    true_p95,
)
from bench.nightly_overhead import probe_activity
from meshproof.lab.kube.requestlog import RequestLog
from meshproof.lab.state import LabPaths


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_benchmark_module_imports_and_has_a_main(name: str) -> None:
    module = importlib.import_module(f"bench.{name}")
    assert callable(module.main)
    assert name == module.NAME


def test_figure_line_round_trips() -> None:
    figure = Figure("lab_ready", "Ready in 12.0 s; bare 1.0 s", "<= 20 s", True)
    assert parse_figure_line(figure.line()) == figure
    assert parse_figure_line("lab_ready: could not run: no lab") is None


def test_a_benchmark_that_cannot_run_ends_in_one_line_and_exit_2(
        capsys: pytest.CaptureFixture[str]) -> None:
    def broken() -> Figure:
        raise CannotRun("no lab")

    assert run_benchmark("lab_ready", broken) == CANNOT_RUN
    assert capsys.readouterr().out.strip().splitlines()[-1] == "lab_ready: could not run: no lab"


def test_true_p95_is_nearest_rank() -> None:
    assert true_p95(list(range(1, 101)), 0.95) == 95
    assert true_p95([5.0], 0.95) == 5.0


def test_ours_is_never_wrong_at_a_bucket_bound_and_the_tally_adds_up() -> None:
    cases = synthetic_cases(100.0, count=40, requests=400, seed=1)
    tally = judge_cases(cases, threshold_ms=100.0, quantile=0.95, min_samples=100)
    assert tally.cases == 40
    assert 0 < tally.truly_held < 40  # the p95s straddle the threshold
    assert tally.ours_wrong == 0 and tally.ours_inconclusive == 0


def test_between_bounds_ours_abstains_where_interpolation_errs() -> None:
    cases = synthetic_cases(200.0, count=40, requests=400, seed=2)
    tally = judge_cases(cases, threshold_ms=200.0, quantile=0.95, min_samples=100)
    assert tally.ours_wrong == 0
    assert tally.ours_inconclusive > 0
    assert tally.rule_wrong > 0


def test_counting_both_reporters_misleads_the_runbook_rule_only() -> None:
    cases = synthetic_cases(100.0, count=40, requests=400, seed=3, both_reporters=True)
    assert all(len(c.rule_ms) == 2 * len(c.client_ms) for c in cases)
    tally = judge_cases(cases, threshold_ms=100.0, quantile=0.95, min_samples=100)
    assert tally.ours_wrong == 0
    assert tally.rule_wrong > 0


def test_alert_threshold_is_read_from_the_expression() -> None:
    assert alert_threshold_ms('histogram_quantile(0.95, sum by (le) (x)) > 200') == 200.0
    with pytest.raises(ValueError):
        alert_threshold_ms("up == 0")


def test_tree_memory_of_this_process() -> None:
    memory = tree_memory(os.getpid())
    assert memory.processes >= 1
    assert memory.rss >= memory.root_rss > 0
    assert memory.pss > 0


def test_probe_span_reads_only_probe_calls(tmp_path: Path) -> None:
    paths = LabPaths(tmp_path)
    log = RequestLog(paths.logs / "one-requests.log")
    log.write(user="admin", verb="create", resource="pods", subresource="proxy",
              namespace="meshproof-probe-abc", name="probe-mesh", code=200)
    log.write(user="admin", verb="get", resource="pods", namespace="sample", code=200)
    log.write(user="admin", verb="create", resource="pods", subresource="proxy",
              namespace="meshproof-probe-abc", name="probe-mesh", code=200)
    activity = probe_activity(paths)
    assert activity.calls == 2
    assert 0 <= activity.busy_s <= activity.span_s < 5


def test_probe_span_without_probe_calls_cannot_run(tmp_path: Path) -> None:
    with pytest.raises(CannotRun):
        probe_activity(LabPaths(tmp_path))


def test_results_table_replaces_rows_and_keeps_the_rest(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nintro\n\n" + START + "\n" + END + "\n\nafter\n")
    first = Figure("lab_ready", "Ready in 12.0 s", "<= 20 s", True)
    update_results(doc, [Result("lab_ready", first, first.line(), 30.0)], "Machine: test")
    update_results(doc, [Result("lab_memory", None, "lab_memory: could not run: no lab", 1.0)],
                   "Machine: second")
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nintro\n\n") and text.endswith("\n\nafter\n")
    assert "| lab_ready | Ready in 12.0 s | <= 20 s | yes |" in text
    assert "| lab_memory | could not run: no lab |" in text
    assert "Machine: second" in text and "Machine: test" not in text
    assert text.index("| lab_ready") < text.index("| lab_memory")
