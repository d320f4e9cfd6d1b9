"""The progress bar of `run --until-idle` on a terminal.

One line at the bottom of the terminal, redrawn in place as passes go: the engine, a bar, done
of total, the rate and the time left. Log lines written meanwhile go above it: the bar is the
stream of the log's terminal sink, so it clears its line, writes the log text, and draws
itself again. Not on a pipe or a file (`run --until-idle > log` gets log lines, as in a
running synchronizer), nor with `--no-progress` or `logging.format: json`.
"""

from __future__ import annotations

import shutil
import threading
from typing import TextIO

from xos_runtime.engines import Progress

__all__ = ["TerminalBar"]

#: Seconds between two redraws.
REDRAW_EVERY = 0.2

_CLEAR = "\r\x1b[K"


class TerminalBar:
    """A progress bar on `stream` (a terminal) that log lines pass through."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self._line = ""
        self._lock = threading.Lock()  # log lines come from every engine's threads

    def __call__(self, progress: Progress) -> None:
        """Draw `progress`; the final report of a pass clears the bar (the log says the rest)."""
        with self._lock:
            self._line = "" if progress.final else self.render(progress)
            self.stream.write(_CLEAR + self._line)
            self.stream.flush()

    def render(self, progress: Progress) -> str:
        width = shutil.get_terminal_size((80, 24)).columns
        eta = progress.eta
        tail = f" {progress.done:,}/{progress.total:,}  {progress.rate:,.0f}/s"
        if eta is not None:
            tail += f"  ETA {_short(eta)}"
        head = f"{progress.engine:<8} "
        room = width - len(head) - len(tail) - 3
        if room < 10:
            return (head + tail.strip())[: width - 1]
        filled = room * min(progress.done, progress.total) // max(progress.total, 1)
        return f"{head}[{'#' * filled}{'.' * (room - filled)}]{tail}"

    def write(self, text: str) -> int:
        """A log line: above the bar."""
        with self._lock:
            if self._line:
                self.stream.write(_CLEAR)
            self.stream.write(text)
            if self._line and text.endswith("\n"):
                self.stream.write(self._line)
            self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return True

    def close(self) -> None:
        """Take the bar off the terminal."""
        with self._lock:
            if self._line:
                self.stream.write(_CLEAR)
                self.stream.flush()
                self._line = ""


def _short(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
