"""The runbook rehearsal: its read-only commands run against a target; the removed ones."""

from meshproof.rehearsal.runbook import (
    COMMANDS_FILE,
    CommandResult,
    Rehearsal,
    RemovedCommand,
    RunbookCommand,
    load_commands,
    rehearse,
    render_rehearsal,
)

__all__ = [
    "COMMANDS_FILE",
    "CommandResult",
    "Rehearsal",
    "RemovedCommand",
    "RunbookCommand",
    "load_commands",
    "rehearse",
    "render_rehearsal",
]
