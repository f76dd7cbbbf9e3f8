"""The ``meshproof`` command: run a profile, list the catalog, drive the lab, recover.

Exit codes (DESIGN §6): 0 every guarantee held · 1 a guarantee was violated ·
2 the run could not be done. Anything the suite reports on purpose
(``MeshproofError``), a file problem (``OSError``) or an interrupt becomes one
line ``meshproof: error: ...`` on stderr and exit 2; ``--debug`` adds the
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import IO, NoReturn

from meshproof import __version__
from meshproof.catalog import PROFILES, Catalog, Guarantee, load_catalog
from meshproof.errors import MeshproofError
from meshproof.target import Target, load_target
from meshproof.urls import pushgateway_url

__all__ = ["EXIT_COULD_NOT_RUN", "EXIT_HELD", "EXIT_VIOLATED", "build_parser", "main"]

EXIT_HELD = 0
EXIT_VIOLATED = 1
EXIT_COULD_NOT_RUN = 2

_DESCRIPTION = """\
Prove that a two-cluster Istio mesh keeps the promises of its operations runbook.

Each guarantee of the catalog (`meshproof catalog`) is measured on a target -
the built-in lab or a YAML target file (docs/targets.md) - and judged held,
violated or not measurable."""

_EPILOG = """\
exit codes:
  0  every guarantee held
  1  at least one guarantee was violated
  2  the run could not be done (bad target file, unreachable cluster, missing
     permission, interrupted); the reason is one line on stderr

examples:
  meshproof lab up
  meshproof run --target lab --profile nightly
  meshproof run --target staging.yaml --profile nightly --dry-run
  meshproof catalog --json"""


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (exit 2) like every other error."""

    def error(self, message: str) -> NoReturn:
        _print_error(f"{message} (see `{self.prog} --help`)")
        raise SystemExit(EXIT_COULD_NOT_RUN)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``meshproof`` command."""
    parser = _Parser(
        prog="meshproof",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"meshproof {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="on error, print the traceback as well"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    run = commands.add_parser(
        "run",
        help="prove a profile's guarantees on a target",
        description="Prove every guarantee of a profile on a target and write the reports.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--target", required=True, metavar="lab|FILE",
        help="`lab` for the built-in lab (start it with `meshproof lab up`) or a target file",
    )
    run.add_argument(
        "--profile", required=True, choices=PROFILES,
        help="nightly: every non-destructive guarantee; drill: the chaos experiments inside "
        "the target's blast radius; preupgrade: config analysis, nightly and selected drills",
    )
    run.add_argument(
        "--report-dir", default="reports", type=Path, metavar="DIR",
        help="where reports are written (default: %(default)s)",
    )
    run.add_argument(
        "--dry-run", action="store_true",
        help="validate the target and show what would be measured, then stop",
    )
    run.add_argument(
        "--require-all", action="store_true",
        help="exit 1 when any guarantee could not be measured (default: listed, exit 0)",
    )
    run.add_argument(
        "--pushgateway", type=pushgateway_url, default=None, metavar="URL",
        help="also push per-guarantee results to this Prometheus Pushgateway "
        "(a failed push is a warning, not a failed run)",
    )
    run.add_argument(
        "--baseline-dir", type=Path, default=None, metavar="DIR",
        help="preupgrade: where the run is saved as the baseline for `meshproof compare` "
        "(default: .meshproof/baseline)",
    )
    run.add_argument(
        "--watch", action="store_true",
        help="repeat the profile's non-destructive checks (e.g. during an upgrade) and record "
        "when each guarantee's verdict changes; stops by itself after --duration",
    )
    run.add_argument(
        "--interval", type=float, default=None, metavar="S",
        help="--watch: seconds from the start of one round to the next (default: 60)",
    )
    run.add_argument(
        "--duration", type=float, default=None, metavar="S",
        help="--watch: seconds to keep watching (default: 3600)",
    )
    # For the runner's own tests: run another directory of .feature files.
    run.add_argument("--features-dir", type=Path, default=None, help=argparse.SUPPRESS)

    catalog = commands.add_parser(
        "catalog",
        help="list every guarantee (id, statement, SLI, thresholds, window, runbook source)",
        description="List the guarantee catalog and the runbook's alerts.",
    )
    catalog.add_argument("--json", action="store_true", help="print the versioned JSON document")
    catalog.add_argument("--profile", choices=PROFILES, help="only the guarantees of this profile")

    compare = commands.add_parser(
        "compare",
        help="compare two runs (before / after an upgrade) and say go or no-go",
        description="Compare two runs guarantee by guarantee (verdict changes) and SLI by SLI "
        "(a one-sided two-proportion test on the counted shares); exit 0 go, 1 no-go, "
        "2 unreadable input.",
    )
    compare.add_argument("baseline", type=Path, metavar="BASELINE",
                         help="report directory or report.json of the earlier run")
    compare.add_argument("current", type=Path, metavar="CURRENT",
                         help="report directory or report.json of the later run")
    compare.add_argument("--alpha", type=float, default=None, metavar="A",
                         help="false-alarm rate of each SLI test (default: 0.01)")
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")

    rehearse = commands.add_parser(
        "rehearse",
        help="run the runbook's read-only commands against a target; list the removed ones",
        description="Run the runbook's read-only kubectl/istioctl commands on every cluster of "
        "the target (where the tool is installed) and list the runbook commands that no longer "
        "exist with their current equivalents. Exit 0 all ran commands succeeded, 1 some "
        "failed, 2 could not run.",
    )
    rehearse.add_argument("--target", required=True, metavar="lab|FILE")
    rehearse.add_argument("--report-dir", default=None, type=Path, metavar="DIR",
                          help="also write rehearsal.json here")

    commands.add_parser(
        "lab",
        help="start, stop, inspect or break the built-in lab (`meshproof lab --help`)",
        add_help=False,
    )

    recover = commands.add_parser(
        "recover",
        help="find and undo leftovers of interrupted runs",
        description="Find and undo the changes interrupted runs left on a target.",
    )
    recover.add_argument("--target", required=True, metavar="lab|FILE")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``meshproof`` command; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in _global_part(args_list)
    try:
        return _dispatch(args_list)
    except KeyboardInterrupt:
        return _fail("interrupted", debug)
    except BrokenPipeError:
        # The reader went away (`meshproof catalog | head`); stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_HELD
    except MeshproofError as exc:
        return _fail(str(exc), debug)
    except OSError as exc:
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        return _fail(f"{exc.strerror or exc.__class__.__name__}:{where}", debug)
    except Exception as exc:  # a bug: still one line unless --debug
        return _fail(
            f"internal error {exc.__class__.__name__}: {exc} "
            "(rerun with --debug for the traceback)",
            debug,
        )


def _global_part(argv: list[str]) -> list[str]:
    """The options before the command word."""
    for i, arg in enumerate(argv):
        if not arg.startswith("-"):
            return argv[:i]
    return argv


def _dispatch(argv: list[str]) -> int:
    head = _global_part(argv)
    if len(head) < len(argv) and argv[len(head)] == "lab":
        # Everything after `lab` belongs to the lab's own CLI, --help included.
        if any(option != "--debug" for option in head):
            # Let argparse answer --version / --help / an unknown option before `lab`;
            # "catalog" only completes the command line so it gets that far.
            build_parser().parse_args([*head, "catalog"])
        return _run_lab(argv[len(head) + 1:])
    args = build_parser().parse_args(argv)
    if args.command == "run":
        _check_run_options(args)
        return _run(
            args.target, args.profile, args.report_dir, args.dry_run,
            features_dir=args.features_dir, require_all=args.require_all,
            pushgateway=args.pushgateway, baseline_dir=args.baseline_dir,
            watch=(args.interval, args.duration) if args.watch else None,
        )
    if args.command == "compare":
        from meshproof.compare import compare_command

        return compare_command(args.baseline, args.current, args.alpha, args.json)
    if args.command == "rehearse":
        from meshproof.rehearsal.runbook import rehearse_command

        return rehearse_command(load_target(args.target), args.report_dir)
    if args.command == "catalog":
        return _catalog(args.json, args.profile)
    if args.command == "recover":
        from meshproof.runner import recover

        return recover(load_target(args.target))
    raise MeshproofError(f"unknown command {args.command!r}")


def _run(
    target_spec: str,
    profile: str,
    report_dir: Path,
    dry_run: bool,
    *,
    features_dir: Path | None = None,
    require_all: bool = False,
    pushgateway: str | None = None,
    baseline_dir: Path | None = None,
    watch: tuple[float | None, float | None] | None = None,
) -> int:
    target = load_target(target_spec)
    catalog = load_catalog()
    if report_dir.exists() and not report_dir.is_dir():
        raise MeshproofError(
            f"--report-dir {report_dir} is a file; give a directory (it is created if missing)"
        )
    if dry_run:
        _print_plan(target, catalog, profile, report_dir)
        return EXIT_HELD
    from meshproof.connections import open_connections, preflight
    from meshproof.runner import run_profile

    # Another features directory (the runner's own tests) may not talk to the target at all.
    if features_dir is None and not os.environ.get("MESHPROOF_FEATURES_DIR"):
        preflight(open_connections(target))

    def run_checks(directory: Path = report_dir, out: IO[str] | None = None) -> int:
        return run_profile(
            target, profile, directory, features_dir=features_dir,
            require_all=require_all or None, pushgateway=pushgateway, out=out,
        )

    if watch is not None:
        from meshproof.watch import watch_command

        return watch_command(target, catalog, profile, report_dir, run_checks, *watch)
    if profile == "preupgrade":
        from meshproof.rehearsal.preupgrade import preupgrade_command

        return preupgrade_command(target, report_dir, baseline_dir, run_checks)
    return run_checks()


def _check_run_options(args: argparse.Namespace) -> None:
    """Options that only make sense together; a misuse is a usage error (one line, exit 2)."""
    parser = build_parser()
    if not args.watch and (args.interval is not None or args.duration is not None):
        parser.error("--interval and --duration go with --watch")
    if args.baseline_dir is not None and args.profile != "preupgrade":
        parser.error("--baseline-dir goes with --profile preupgrade")


def _print_plan(target: Target, catalog: Catalog, profile: str, report_dir: Path) -> None:
    out = sys.stdout
    out.write(f"target     {target.name} ({target.source})\n")
    for c in target.clusters:
        prometheus = c.prometheus.url if c.prometheus else "none"
        consul = f"{c.consul.namespace}/{c.consul.service}:{c.consul.port}" if c.consul else "none"
        out.write(
            f"cluster    {c.name} context={c.context} network={c.network} "
            f"prometheus={prometheus} consul={consul}\n"
        )
    guarantees = catalog.for_profile(profile)
    out.write(f"profile    {profile}: {len(guarantees)} guarantees, reports to {report_dir}\n")
    for g in guarantees:
        eff = target.effective_thresholds(catalog, g.id)
        values = " ".join(f"{k}={_num(v)}" for k, v in eff.values.items())
        flag = " destructive" if g.destructive else ""
        out.write(f"guarantee  {g.id} {values} window={eff.window_s}s{flag}\n")
        for change in eff.changes:
            how = "LOOSENED" if change.loosened else "tightened"
            why = f' reason="{change.reason}"' if change.reason else ""
            out.write(
                f"override   {g.id} {change.name} {_num(change.catalog_value)} -> "
                f"{_num(change.target_value)} {how}{why}\n"
            )
    if any(g.destructive for g in guarantees):
        for name in target.cluster_names:
            allowed = target.destructive.allowed.get(name, [])
            faults = ", ".join(allowed) or "none (nothing destructive runs here)"
            out.write(f"blast      {name}: {faults}\n")
        _print_drills(target, [g.id for g in guarantees if g.destructive], out)
    out.write("dry-run    target and catalog are valid; nothing was measured\n")


def _print_drills(target: Target, guarantee_ids: list[str], out: IO[str]) -> None:
    """Each drill the run would make: experiment, fault cluster, client, the faults it applies
    per cluster, and whether the blast radius allows them (nothing is contacted)."""
    from meshproof.chaos.experiments import (
        default_experiments_dir,
        experiments_for,
        role_assignments,
    )

    for experiment in experiments_for(guarantee_ids, default_experiments_dir()):
        for roles in role_assignments(target.cluster_names):
            faults = experiment.faults_by_cluster(roles)
            refused = [f"{c}/{f}" for c, names in faults.items() for f in names
                       if not target.allows(c, f)]
            applies = "; ".join(f"{c}: {', '.join(names)}" for c, names in faults.items())
            verdict = f"REFUSED ({', '.join(refused)} not allowed)" if refused else "allowed"
            out.write(
                f"drill      {experiment.path.name} [{', '.join(experiment.guarantees)}] "
                f"fault={roles['fault_cluster']} client={roles['client_cluster']} "
                f"applies {applies or 'nothing'}: {verdict}\n"
            )


def _catalog(as_json: bool, profile: str | None) -> int:
    catalog = load_catalog()
    guarantees = catalog.for_profile(profile) if profile else tuple(catalog)
    if as_json:
        document = catalog.to_document()
        if profile:
            document["guarantees"] = [g.model_dump(mode="json") for g in guarantees]
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        return EXIT_HELD
    width = max(len(g.id) for g in guarantees)
    for g in guarantees:
        sys.stdout.write(_catalog_line(g, width) + "\n")
    core = sum(1 for g in guarantees if g.tier == "core")
    sys.stdout.write(
        f"{len(guarantees)} guarantees ({core} core, {len(guarantees) - core} extended), "
        f"{len(catalog.alerts)} runbook alerts; "
        "`meshproof catalog --json` has SLIs and alert PromQL\n"
    )
    return EXIT_HELD


def _catalog_line(g: Guarantee, width: int) -> str:
    thresholds = " ".join(f"{k}={_num(v)}" for k, v in g.thresholds.items())
    cites = ", ".join(r.cite().removeprefix("runbook ") for r in g.runbook)
    flags = f"{g.tier}{' destructive' if g.destructive else ''}"
    return (
        f"{g.id:<{width}}  {flags:<16} {','.join(g.profiles):<19} window={g.window_s}s  "
        f"{thresholds}  [runbook {cites}]\n{'':<{width}}  {g.statement}"
    )


def _run_lab(argv: list[str]) -> int:
    try:
        module = importlib.import_module("meshproof.lab.cli")
    except ImportError as exc:
        missing = getattr(exc, "name", None) or "meshproof.lab.cli"
        raise MeshproofError(
            f"the lab is not available: module {missing} cannot be imported; "
            "reinstall with `pip install -e .` or use --target FILE with a real mesh"
        ) from exc
    lab_main = getattr(module, "main", None)
    if not callable(lab_main):
        raise MeshproofError("the lab is not available: meshproof.lab.cli has no main(argv)")
    result = lab_main(list(argv))
    return result if isinstance(result, int) else EXIT_HELD


def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _print_error(message: str) -> None:
    one_line = " ".join(message.splitlines()) or "unknown error"
    sys.stderr.write(f"meshproof: error: {one_line}\n")


def _fail(message: str, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    _print_error(message)
    return EXIT_COULD_NOT_RUN
