"""`--pushgateway`: per-guarantee results reach a real Prometheus Pushgateway, and a push that
fails is one warning line, never a failed run.

Runs Debian's ``prometheus-pushgateway`` on 127.0.0.1 (skipped with the reason when it is not
installed: ``.ci/system-deps`` lists it as optional).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from meshproof.report.model import Report
from meshproof.report.pushgateway import push_results
from meshproof.sli.verdict import Verdict
from meshproof.timeouts import DEFAULT_TIMEOUTS
from meshproof.waiting import eventually
from tests.report.recorded import recorded_report
from tests.support.runner import LAB_LIKE, RUNNER_DATA
from tests.support.servers import free_port

BINARY = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")
pytestmark = pytest.mark.skipif(
    BINARY is None,
    reason="prometheus-pushgateway is not installed (apt-get install prometheus-pushgateway)",
)
TIMEOUT = DEFAULT_TIMEOUTS.api_request


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[str]:
    """A fresh Pushgateway on a free loopback port, stopped afterwards."""
    assert BINARY is not None
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "pushgateway.log").open("wb") as log:
        process = subprocess.Popen(
            [BINARY, f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )

    def ready() -> None:
        assert process.poll() is None, f"pushgateway exited {process.returncode}"
        try:
            answer = requests.get(f"{url}/-/ready", timeout=DEFAULT_TIMEOUTS.poll_interval)
        except requests.RequestException as exc:
            raise AssertionError(f"not answering: {exc}") from exc
        assert answer.status_code == 200

    try:
        eventually(ready, timeout=TIMEOUT, interval=0.1, what=f"pushgateway on {url}")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=DEFAULT_TIMEOUTS.lab_stop)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def pushed(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every meshproof sample the Pushgateway serves, by name and sorted labels."""
    text = requests.get(f"{url}/metrics", timeout=TIMEOUT).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("meshproof_")
    }


def verdict_of(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float],
               guarantee: str) -> set[str]:
    return {
        dict(labels)["verdict"]
        for (name, labels), value in samples.items()
        if name == "meshproof_guarantee_verdict" and dict(labels)["guarantee"] == guarantee
        and value == 1
    }


def test_each_guarantee_is_pushed_with_its_verdict(pushgateway: str) -> None:
    report = recorded_report()
    assert push_results(report, pushgateway, timeout=TIMEOUT) is None
    samples = pushed(pushgateway)
    for g in report.guarantees:
        assert verdict_of(samples, g.id) == {g.verdict.value}, g.id
    one = next(labels for (name, labels) in samples if name == "meshproof_guarantee_verdict")
    assert {k for k, _ in one} >= {"guarantee", "verdict", "tier", "profile", "target", "job"}
    assert dict(one)["job"] == "meshproof"
    assert dict(one)["profile"] == report.run.profile
    assert dict(one)["target"] == report.run.target
    held = [value for (name, labels), value in samples.items()
            if name == "meshproof_run_guarantees" and dict(labels)["verdict"] == "held"]
    assert held == [len(report.summary.held)]


def test_the_next_run_replaces_the_previous_numbers(pushgateway: str) -> None:
    report = recorded_report()
    first = report.guarantees[0]
    assert push_results(report, pushgateway, timeout=TIMEOUT) is None
    assert verdict_of(pushed(pushgateway), first.id) == {first.verdict.value}
    flipped = Verdict.VIOLATED if first.verdict is not Verdict.VIOLATED else Verdict.HELD
    worse = dataclasses.replace(
        report, guarantees=(dataclasses.replace(first, verdict=flipped), *report.guarantees[1:])
    )
    assert push_results(worse, pushgateway, timeout=TIMEOUT) is None
    assert verdict_of(pushed(pushgateway), first.id) == {flipped.value}


def test_an_unreachable_pushgateway_is_one_warning_without_the_password() -> None:
    url = f"http://meshproof:s3cret-word@127.0.0.1:{free_port()}"
    warning = push_results(recorded_report(), url, timeout=TIMEOUT)
    assert warning is not None and "could not push" in warning
    assert "s3cret-word" not in warning and "\n" not in warning


def run_mixed(report_dir: Path, pushgateway: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MESHPROOF_FEATURES_DIR": str(RUNNER_DATA / "mixed")}
    env.pop("MESHPROOF_REQUIRE_ALL", None)
    return subprocess.run(
        [sys.executable, "-m", "meshproof", "run", "--target", str(LAB_LIKE), "--profile",
         "nightly", "--report-dir", str(report_dir), "--pushgateway", pushgateway],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )


def test_meshproof_run_pushes_and_a_failed_push_does_not_change_the_result(
    pushgateway: str, tmp_path: Path
) -> None:
    good = run_mixed(tmp_path / "good", pushgateway)
    lines = good.stdout.splitlines()
    assert f"[ push ] results pushed to the Pushgateway at {pushgateway}" in lines, good.stdout
    report = Report.from_dict(json.loads((tmp_path / "good" / "report.json").read_text()))
    samples = pushed(pushgateway)
    for g in report.guarantees:
        assert verdict_of(samples, g.id) == {g.verdict.value}, g.id
    assert lines[-1].startswith(f"{len(report.summary.held)}/{report.summary.total} guarantees")

    dead = run_mixed(tmp_path / "dead", f"http://127.0.0.1:{free_port()}")
    warnings = [line for line in dead.stdout.splitlines() if line.startswith("[ push ]")]
    assert len(warnings) == 1 and "warning: could not push" in warnings[0], dead.stdout
    assert dead.returncode == good.returncode == 1  # the mixed run violates; the push is aside
    assert dead.stdout.splitlines()[-1] == lines[-1]
    assert "Traceback" not in dead.stdout + dead.stderr
