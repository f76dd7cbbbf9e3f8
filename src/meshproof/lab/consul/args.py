"""The flags a lab program gets from a container command such as the chart's ``/bin/sh -ec``.

The consul-k8s chart starts both programs through a shell script
(``exec /usr/local/bin/docker-entrypoint.sh consul agent -advertise=... \\``);
the lab runs the program directly, so it reads the flags out of that script: line
continuations joined, the script's own ``NAME="value"`` assignments and the
container's environment substituted, then the words after the program's name.
"""

from __future__ import annotations

import re
import shlex

__all__ = ["parse_flags", "program_args"]

_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[?:][^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _substitute(text: str, variables: dict[str, str]) -> str:
    return _VAR.sub(lambda m: variables.get(m.group(1) or m.group(2), ""), text)


def program_args(argv: list[str], env: dict[str, str], marker: tuple[str, ...]) -> list[str]:
    """The words after ``marker`` (e.g. ``("consul", "agent")``) in ``argv`` or its shell script.

    ``argv`` is the container's command as the kubelet gives it; without a shell it is
    searched directly. Returns [] when the marker is not found.
    """
    words = list(argv)
    if len(words) >= 3 and words[0].rsplit("/", 1)[-1] in ("sh", "bash") and \
            words[1].startswith("-") and "c" in words[1]:
        variables = dict(env)
        script = words[2].replace("\\\n", " ")
        for line in script.splitlines():
            line = line.strip()
            m = _ASSIGN.match(line)
            if m and " " not in m.group(2).strip('"'):
                variables[m.group(1)] = _substitute(m.group(2).strip('"').strip("'"), variables)
                continue
            try:
                tokens = [_substitute(t, variables) for t in shlex.split(line)]
            except ValueError:
                continue
            found = _find(tokens, marker)
            if found is not None:
                return found
        return []
    found = _find(words, marker)
    return found if found is not None else []


def _find(tokens: list[str], marker: tuple[str, ...]) -> list[str] | None:
    for i in range(len(tokens) - len(marker) + 1):
        if tuple(t.rsplit("/", 1)[-1] if j == 0 else t
                 for j, t in enumerate(tokens[i:i + len(marker)])) == marker:
            return tokens[i + len(marker):]
    return None


def parse_flags(args: list[str]) -> dict[str, list[str]]:
    """Go-style flags (``-name=value``, ``-name value``, ``-bool``) → name → every value given."""
    out: dict[str, list[str]] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-") or arg in ("-", "--"):
            continue
        name = arg.lstrip("-")
        if "=" in name:
            name, value = name.split("=", 1)
        elif i < len(args) and not args[i].startswith("-"):
            value = args[i]
            i += 1
        else:
            value = "true"
        out.setdefault(name, []).append(value)
    return out
