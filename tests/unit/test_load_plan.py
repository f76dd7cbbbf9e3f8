"""Load plans are validated before anything starts; command lines never show credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshproof.errors import ConfigError
from meshproof.load.command import locust_commands, redact_command
from meshproof.load.connect import parse_connect_to
from meshproof.load.plan import LoadPlan, LoadProgress, bundled_locustfile
from meshproof.load.shapes import users_at


def _plan(tmp_path: Path, **changes: object) -> LoadPlan:
    locustfile = tmp_path / "file.py"
    locustfile.write_text("")
    fields: dict[str, object] = {
        "locustfile": locustfile,
        "host": "http://127.0.0.1:5000",
        "users": 4,
        "run_time_s": 3,
    }
    fields.update(changes)
    return LoadPlan(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"host": "helloworld.sample:5000"}, r"http\(s\) URL"),
        ({"users": 0}, "users"),
        ({"spawn_rate": 0}, "spawn_rate"),
        ({"run_time_s": 0.5}, "run_time_s"),
        ({"shape": "ramp"}, "shape"),
        ({"shape": "step"}, "step_users"),
        ({"workers": -1}, "workers"),
        ({"workers": 5}, "5 workers"),
        ({"options": {"--ca-file": "x"}}, "without dashes"),
        ({"locustfile": Path("/nonexistent/locustfile.py")}, "does not exist"),
    ],
)
def test_bad_plans_are_refused(tmp_path: Path, changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _plan(tmp_path, **changes).validate()


def test_bad_host_is_reported_without_its_password(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _plan(tmp_path, host="ftp://user:hunter2@example.com").validate()
    assert "hunter2" not in str(caught.value)


def test_bundled_locustfiles_exist() -> None:
    assert bundled_locustfile("helloworld").name == "helloworld.py"
    assert bundled_locustfile("ingress.py").name == "ingress.py"
    with pytest.raises(ConfigError, match="nope"):
        bundled_locustfile("nope")


def test_commands_single_and_distributed(tmp_path: Path) -> None:
    plan = _plan(tmp_path, shape="step", step_users=2, step_s=5, options={"hello-path": "/hello"})
    single = locust_commands(plan, output_dir=tmp_path, record_dir=tmp_path / "r")
    assert single.workers == ()
    assert "--headless" in single.main and single.main[single.main.index("-t") + 1] == "3s"
    assert single.main[-2:] == ("--hello-path", "/hello")
    assert single.env["MESHPROOF_LOAD_SHAPE"] == "step"
    assert single.env["MESHPROOF_LOAD_STEP_USERS"] == "2"

    distributed = locust_commands(
        _plan(tmp_path, workers=2), output_dir=tmp_path, record_dir=tmp_path / "r", master_port=5599
    )
    assert "--master" in distributed.main and "--expect-workers" in distributed.main
    assert len(distributed.workers) == 2
    assert "--worker" in distributed.workers[0] and "5599" in distributed.workers[0]


def test_redaction() -> None:
    shown = redact_command(
        [
            "locust",
            "--host",
            "https://bob:s3cret@api.example.com",
            "--auth-token",
            "t0ken",
            "-u",
            "3",
        ],
        {"MESHPROOF_LOAD_SHAPE": "steady"},
    )
    text = " ".join(shown)
    assert "s3cret" not in text and "t0ken" not in text
    assert "https://***@api.example.com" in text
    assert shown[0] == "MESHPROOF_LOAD_SHAPE=steady"


def test_progress_line() -> None:
    line = LoadProgress(elapsed_s=12.2, total_s=60, requests=1234, failures=3).line()
    assert line.startswith("load: ") and "12s / 60s" in line and "1234 requests (3 failed)" in line


def test_shapes() -> None:
    assert [users_at(t, shape="steady", peak=5, step_users=1, step_seconds=1) for t in (0, 9)] == [
        5,
        5,
    ]
    steps = [
        users_at(t, shape="step", peak=5, step_users=2, step_seconds=10)
        for t in (0, 9.9, 10, 25, 99)
    ]
    assert steps == [2, 2, 4, 5, 5]
    with pytest.raises(ValueError):
        users_at(0, shape="ramp", peak=1, step_users=1, step_seconds=1)


def test_connect_to() -> None:
    assert parse_connect_to("").address_for("api.example.com", 443) == ("api.example.com", 443)
    assert parse_connect_to("127.1.0.50").address_for("api.example.com", 80) == ("127.1.0.50", 80)
    both = parse_connect_to("127.1.0.50:8443, 80:127.1.0.50:8080")
    assert both.address_for("api.example.com", 443) == ("127.1.0.50", 8443)
    assert both.address_for("api.example.com", 80) == ("127.1.0.50", 8080)
    for bad in ("a:b", "1:2:3:4", "127.0.0.1:", "80:x:70000"):
        with pytest.raises(ConfigError, match="connect-to"):
            parse_connect_to(bad)
