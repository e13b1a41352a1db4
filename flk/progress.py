"""Progress on stderr for the command-line tools, on rich: one helper for every long-running command.

On a terminal a live line (with a bar when the share done is known), redrawn at most every
``refresh_s``; messages (bad rows) are printed above it, so they stay readable. On anything else
(CI logs, files) plain lines, at most one every ``log_every_s``, and the last state when closed:
rich's live display shows a non-terminal only the final state, so the periodic lines are ours.
Whether the stream is a terminal is rich's decision (``Console.is_terminal``: a tty, or
FORCE_COLOR/TTY_COMPATIBLE set; not TERM=dumb).

    with StatusLine(enabled=progress) as status:
        for n, row in enumerate(rows, 1):
            if status.due():
                status.update(f"{n} rows", fraction=reader.position() / size)
            if bad(row):
                status.print(f"line {n}: skipped")
"""
from __future__ import annotations

import atexit
import sys
import time
from collections.abc import Callable
from typing import IO, Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)


class StatusLine:
    """One task's progress on a stream (stderr by default); ``enabled=False`` shows nothing but messages."""

    def __init__(self, *, enabled: bool = True, stream: IO[str] | None = None, terminal: bool | None = None,
                 bar: bool = False, refresh_s: float = 0.25, log_every_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.console = Console(file=self.stream, highlight=False, force_terminal=terminal)
        self.enabled = enabled
        self.terminal = self.console.is_terminal and not self.console.is_dumb_terminal
        self.bar = bar
        self.every_s = refresh_s if self.terminal else log_every_s
        self.clock = clock
        self._last: float | None = None
        self._text: str | None = None  # the last state, and whether a log line still owes it
        self._fraction: float | None = None
        self._unlogged = False
        self._live: Progress | None = None
        self._task: TaskID | None = None

    def due(self) -> bool:
        """Whether an update now would be shown (cheap: call it before building the text)."""
        return self.enabled and (self._last is None or self.clock() - self._last >= self.every_s)

    def update(self, text: str, fraction: float | None = None, *, force: bool = False) -> None:
        """The current state; shown if due (or ``force``), else kept for the next or the last line."""
        if not self.enabled:
            return
        self._text, self._fraction = text, fraction
        self._unlogged = True
        if not (force or self.due()):
            return
        self._last = self.clock()
        if self.terminal:
            self._draw()
        else:
            self.stream.write(text + "\n")
            self.stream.flush()
            self._unlogged = False

    def print(self, message: str) -> None:
        """A line that stays (a bad row): above the live line on a terminal, a plain line otherwise."""
        if self._live is not None:
            self._live.console.print(message, markup=False, highlight=False, soft_wrap=True)
        else:
            self.stream.write(message + "\n")
            self.stream.flush()

    def close(self) -> None:
        """Show the last state: the live line is redrawn and left in place; a log gets it if not yet written."""
        if self.enabled and self._text is not None:
            if self.terminal:
                self._draw()
            elif self._unlogged:
                self.stream.write(self._text + "\n")
                self.stream.flush()
        self._unlogged = False
        if self._live is not None:
            atexit.unregister(self.close)
            self._live.stop()
            self._live = None
        self._last = None
        self._text = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _draw(self) -> None:
        if self._live is None:
            columns = [TextColumn("{task.description}", markup=False)]
            if self.bar:
                columns[:0] = [BarColumn(bar_width=30), TaskProgressColumn()]
            columns.append(TimeElapsedColumn())
            # auto_refresh off: drawn when updated (no thread); stderr written by others goes above the line
            self._live = Progress(*columns, console=self.console, auto_refresh=False, redirect_stdout=False)
            self._task = self._live.add_task(self._text or "", total=1.0 if self.bar else None)
            self._live.start()
            atexit.register(self.close)  # a command that fails or is interrupted still gets its cursor back
        assert self._task is not None
        completed = min(max(self._fraction, 0.0), 1.0) if self._fraction is not None else None
        self._live.update(self._task, description=self._text or "", completed=completed)
        self._live.refresh()
