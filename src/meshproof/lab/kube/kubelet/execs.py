"""Commands run in a container's environment: ``kubectl exec`` and exec probes / hooks."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import signal
import struct
import termios
from collections.abc import AsyncIterator
from pathlib import Path

from meshproof.lab.kube.interfaces import ExecSession
from meshproof.lab.kube.kubelet.launch import exec_argv, map_args, resolve_executable

__all__ = ["spawn_exec"]


async def _drain(stream: asyncio.StreamReader | None) -> AsyncIterator[bytes]:
    if stream is None:
        return
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            return
        yield chunk


async def _once(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data


async def _spawn_tty(argv: list[str], executable: str, *, env: dict[str, str],
                     cwd: str) -> ExecSession:
    """``kubectl exec -t``: the command on a pseudo-terminal; stdout and stderr are one stream
    (as with a real tty) and ``extra["resize"](cols, rows)`` sets the window size."""
    master, slave = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, executable=executable, env={"TERM": "xterm", **env}, cwd=cwd, stdin=slave,
            stdout=slave,
            stderr=slave, start_new_session=True)
    finally:
        os.close(slave)
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[bytes] = asyncio.Queue()

    def readable() -> None:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO once the last process holding the terminal has exited
            data = b""
        if not data:
            loop.remove_reader(master)
        chunks.put_nowait(data)

    loop.add_reader(master, readable)

    async def output() -> AsyncIterator[bytes]:
        while data := await chunks.get():
            yield data
        os.close(master)

    async def write_stdin(data: bytes) -> None:
        with contextlib.suppress(OSError):
            os.write(master, data)

    async def close_stdin() -> None:
        await write_stdin(b"\x04")  # end of input, as the terminal's Ctrl-D

    async def wait() -> int:
        rc = await proc.wait()
        return 128 - rc if rc < 0 else rc

    async def kill() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def resize(cols: int, rows: int) -> None:
        with contextlib.suppress(OSError):
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    return ExecSession(stdout=output(), stderr=_once(b""), write_stdin=write_stdin,
                       close_stdin=close_stdin, wait=wait, kill=kill,
                       extra={"pid": proc.pid, "resize": resize})


async def spawn_exec(command: list[str], *, env: dict[str, str], cwd: str, bin_dir: Path,
                     mounts: dict[str, str], stdin: bool = False,
                     tty: bool = False) -> ExecSession:
    """Run ``command`` as a host process in a container's environment."""
    exe = resolve_executable(command[0], bin_dir=bin_dir, mounts=mounts) if command else None
    if exe is None:
        # The message containerd/runc give; the shell convention's 127 as exit code.
        msg = (f'OCI runtime exec failed: exec failed: unable to start container process: '
               f'exec: "{command[0] if command else ""}": executable file not found in $PATH: '
               f"unknown\r\n").encode()

        async def nothing(_: bytes = b"") -> None:
            return None

        async def code() -> int:
            return 127

        return ExecSession(stdout=_once(b""), stderr=_once(msg), write_stdin=nothing,
                           close_stdin=nothing, wait=code, kill=nothing)
    argv, exe = exec_argv([command[0], *map_args(command[1:], mounts)], exe)
    if tty:
        return await _spawn_tty(argv, exe, env=env, cwd=cwd)
    proc = await asyncio.create_subprocess_exec(
        *argv, executable=exe, env=env, cwd=cwd,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True)

    async def write_stdin(data: bytes) -> None:
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.write(data)
            with contextlib.suppress(ConnectionError):
                await proc.stdin.drain()

    async def close_stdin() -> None:
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()

    async def wait() -> int:
        rc = await proc.wait()
        return 128 - rc if rc < 0 else rc

    async def kill() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    return ExecSession(stdout=_drain(proc.stdout), stderr=_drain(proc.stderr),
                       write_stdin=write_stdin, close_stdin=close_stdin, wait=wait, kill=kill,
                       extra={"pid": proc.pid})
