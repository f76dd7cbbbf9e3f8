"""Back up and lose one cluster's mesh configuration, then wait to be killed.

Used by the lab test that SIGKILLs a drill after the fault: it prints ``lost``
once every delete is made (each recorded in the cluster first) and sleeps.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from meshproof.backup import ConfigLossDrill
from meshproof.connections import open_connections
from meshproof.safety import Changes
from meshproof.target import load_target


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--directory", required=True)
    args = parser.parse_args()
    target = load_target(args.target)
    api = open_connections(target).api(args.cluster)
    # Not a context manager: the undo is left to `meshproof recover`, as after a SIGKILL.
    changes = Changes(api, args.cluster, args.run_id)
    drill = ConfigLossDrill(target=target, changes=changes, directory=Path(args.directory))
    drill.back_up()
    drill.lose()
    print("lost", flush=True)
    time.sleep(600)
    sys.exit(1)


if __name__ == "__main__":
    main()
