"""The container process of a Python lab program: ``python -m meshproof.lab.images.launch CTX``.

``CTX`` is a JSON file holding a :class:`ContainerContext` plus the ``entry``
(``module:function``) to call; the function's return value is the exit code.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import sys

from meshproof.lab.images.context import ContainerContext

__all__ = ["main"]


def main(argv: list[str]) -> int:
    with open(argv[0], encoding="utf-8") as fh:
        data = json.load(fh)
    entry = data.pop("entry")
    ctx = ContainerContext(**data)
    module_name, _, func_name = entry.partition(":")
    func = getattr(importlib.import_module(module_name), func_name)
    result = func(ctx)
    if inspect.isawaitable(result):
        result = asyncio.run(result)  # type: ignore[arg-type]
    return int(result or 0)


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.exit(main(sys.argv[1:]))
