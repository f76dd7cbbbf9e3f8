"""``python -m meshproof``: the same as the ``meshproof`` command."""

from __future__ import annotations

from meshproof.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
