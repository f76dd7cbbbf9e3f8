"""How `meshproof` hands work on: `lab ...` to the lab's CLI, errors to one line.

These call ``meshproof.cli.main`` in-process with a stand-in ``meshproof.lab.cli``
module, so they do not depend on the lab being buildable or started.
"""

from __future__ import annotations

import sys
import types

import pytest

from meshproof import cli
from meshproof.errors import LabError


def _stand_in(monkeypatch: pytest.MonkeyPatch, main: object) -> None:
    module = types.ModuleType("meshproof.lab.cli")
    module.main = main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "meshproof.lab.cli", module)


def test_everything_after_lab_goes_to_the_lab_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def lab_main(argv: list[str]) -> int:
        seen.append(argv)
        return 0

    _stand_in(monkeypatch, lab_main)
    assert cli.main(["lab", "status", "--json"]) == 0
    assert cli.main(["--debug", "lab", "--help"]) == 0
    assert cli.main(["lab"]) == 0
    assert seen == [["status", "--json"], ["--help"], []]


def test_the_lab_exit_code_is_passed_through(monkeypatch: pytest.MonkeyPatch) -> None:
    _stand_in(monkeypatch, lambda argv: 2)
    assert cli.main(["lab", "down"]) == 2


def test_a_lab_error_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def lab_main(argv: list[str]) -> int:
        raise LabError("cluster aws-eks: API server did not become Ready\nsee logs")

    _stand_in(monkeypatch, lab_main)
    assert cli.main(["lab", "up"]) == 2
    err = capsys.readouterr().err
    assert err == "meshproof: error: cluster aws-eks: API server did not become Ready see logs\n"


def test_a_missing_lab_module_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # None in sys.modules makes the import fail as if the module were absent.
    monkeypatch.setitem(sys.modules, "meshproof.lab.cli", None)
    assert cli.main(["lab", "up"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("meshproof: error: the lab is not available") and err.count("\n") == 1


def test_interrupt_and_unexpected_errors_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(argv: list[str]) -> int:
        raise KeyboardInterrupt

    _stand_in(monkeypatch, interrupted)
    assert cli.main(["lab", "up"]) == 2
    assert capsys.readouterr().err == "meshproof: error: interrupted\n"

    def buggy(argv: list[str]) -> int:
        raise ZeroDivisionError("division by zero")

    _stand_in(monkeypatch, buggy)
    assert cli.main(["lab", "up"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("meshproof: error: internal error ZeroDivisionError")
    assert "--debug" in err and "Traceback" not in err


def test_os_errors_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def lab_main(argv: list[str]) -> int:
        raise PermissionError(13, "Permission denied", "/var/lib/lab")

    _stand_in(monkeypatch, lab_main)
    assert cli.main(["lab", "up"]) == 2
    assert capsys.readouterr().err == "meshproof: error: Permission denied: /var/lib/lab\n"
