"""Progress of long loops, readable both on a terminal and in a log file.

    bar = progress_bar(total=5000, desc="AE -> class 2", unit="step", enabled=progress)
    for ...:
        bar.update(1)                      # or bar.update(step - bar.n)
        bar.set_postfix(loss="0.1234")     # shown with the bar / appended to the next line
    bar.close()                            # (or use it as a context manager)

Where the output goes (`stream`, default: sys.stderr at the time of the call) decides the style:

* a terminal: a tqdm bar, redrawn in place, removed when it closes (as before);
* anything else (CI, nohup, a cluster job's log file, a notebook's captured stream): plain lines,
  no carriage returns. A line is written when at least `every_fraction` (10%) more of the total is
  done AND at least `min_interval` (30 s) have passed since the last line -- whichever comes later,
  so a log gets at most about ten lines per loop and never more than one per 30 s -- plus one final
  line when the loop ends (with its total time). Loops shorter than 30 s thus write one line.

The environment variable DEEPDIG_PROGRESS overrides the choice: "bar", "plain" or "off".
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from deepdig_fast.validation import Int, Optional

__all__ = ["ENV_VAR", "MODES", "Progress", "progress_bar", "progress_mode"]

ENV_VAR = "DEEPDIG_PROGRESS"
MODES = ("bar", "plain", "off")


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def progress_mode(stream: TextIO | None = None) -> str:
    """ "bar", "plain" or "off" for output to `stream` (default sys.stderr): DEEPDIG_PROGRESS when
    set, else "bar" on a terminal and "plain" otherwise."""
    env = os.environ.get(ENV_VAR, "").strip().lower()
    if env:
        if env not in MODES:
            raise ValueError(f"{ENV_VAR} must be one of {', '.join(MODES)} (or unset), got {env!r}")
        return env
    return "bar" if _is_tty(sys.stderr if stream is None else stream) else "plain"


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(int(round(seconds)), 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


class Progress:
    """One loop's progress (see the module docstring). Build it with `progress_bar`.

    `n` is the count done so far. Methods: update(k), set_postfix(**values), close(); a context
    manager that closes on exit. A disabled one (mode "off") does nothing.
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "it",
        *,
        mode: str,
        stream: TextIO,
        min_interval: float = 30.0,
        every_fraction: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        Optional(Int(0)).check(total, "total")
        if not (isinstance(min_interval, (int, float)) and min_interval >= 0):
            raise ValueError(f"min_interval must be a number of seconds >= 0, got {min_interval!r}")
        if not (isinstance(every_fraction, (int, float)) and 0 < every_fraction <= 1):
            raise ValueError(f"every_fraction must be in (0, 1], got {every_fraction!r}")
        self.total, self.desc, self.unit, self.mode = total, desc, unit, mode
        self.n = 0
        self._stream = stream
        self._min_interval = float(min_interval)
        self._step = every_fraction * total if total else math.inf
        self._clock = clock
        self._start = self._last_time = clock()
        self._last_n = 0
        self._postfix: dict[str, Any] = {}
        self._closed = False
        self._bar = None
        if mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, leave=False, file=stream)

    # -- the loop's side ---------------------------------------------------------------------------
    def update(self, k: int = 1) -> None:
        """Count `k` more done."""
        if self._closed or self.mode == "off":
            self.n += k
            return
        self.n += k
        if self._bar is not None:
            self._bar.update(k)
            return
        now = self._clock()
        if self.n - self._last_n >= self._step and now - self._last_time >= self._min_interval:
            if self.total is None or self.n < self.total:  # the final line is close()'s
                self._line(now, final=False)

    def set_postfix(self, **values: Any) -> None:
        """Values shown next to the count (e.g. loss="0.1234"); replaces the previous ones."""
        self._postfix = {k: v for k, v in values.items() if k != "refresh"}
        if self._bar is not None:
            self._bar.set_postfix(self._postfix, refresh=False)

    def close(self) -> None:
        """End the loop: remove the bar, or write the final plain line. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.mode == "plain":
            self._line(self._clock(), final=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plain lines -------------------------------------------------------------------------------
    def _line(self, now: float, final: bool) -> None:
        elapsed = now - self._start
        if self.total:
            text = f"{self.desc}: {self.n}/{self.total} {self.unit} ({100 * self.n / self.total:.0f}%)"
        else:
            text = f"{self.desc}: {self.n} {self.unit}"
        if final:
            stopped = self.total is not None and self.n < self.total
            text += f", {'stopped after' if stopped else 'done in'} {_duration(elapsed)}"
        else:
            text += f", {_duration(elapsed)} elapsed"
            if self.total and self.n:
                text += f", about {_duration(elapsed * (self.total - self.n) / self.n)} left"
        if self._postfix:
            text += ", " + ", ".join(f"{k}={v}" for k, v in self._postfix.items())
        self._stream.write(text + "\n")
        self._stream.flush()
        self._last_time, self._last_n = now, self.n


def progress_bar(
    total: int | None,
    desc: str,
    unit: str = "it",
    *,
    enabled: bool = True,
    stream: TextIO | None = None,
    mode: str | None = None,
    min_interval: float = 30.0,
    every_fraction: float = 0.1,
    clock: Callable[[], float] = time.monotonic,
) -> Progress:
    """A `Progress` for a loop of `total` units (None if unknown) labelled `desc`.

    Args:
        enabled: False gives a Progress that writes nothing (the library's progress=False).
        stream: where to write (default: sys.stderr now).
        mode: "bar", "plain" or "off"; None chooses with `progress_mode(stream)` (terminal or not,
            DEEPDIG_PROGRESS).
        min_interval, every_fraction: the plain mode's pacing (a line after both 30 s and 10%).
        clock: the time source in seconds (for tests).
    """
    out = sys.stderr if stream is None else stream
    if not enabled:
        mode = "off"
    elif mode is None:
        mode = progress_mode(out)
    return Progress(
        total, desc, unit, mode=mode, stream=out, min_interval=min_interval, every_fraction=every_fraction, clock=clock
    )
