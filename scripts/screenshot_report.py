"""Screenshot an HTML report with headless Chromium, to see a page as a reader's browser draws it
(the tests check the HTML; only a browser shows overlapping figures or tables running off the page).

    python scripts/screenshot_report.py SWEEP_DIR/sweep.html sweep.png [--width 1400] [--height 4000]

Needs Debian's chromium (`apt-get install chromium`); without it the script says so and exits 2.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["find_chromium", "screenshot", "main"]

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "/usr/bin/chromium")


class ChromiumMissingError(FileNotFoundError):
    """No Chromium binary on PATH or at /usr/bin/chromium."""


def find_chromium() -> str | None:
    """The path of a Chromium (or Chrome) binary, or None."""
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(
    html: str | os.PathLike, png: str | os.PathLike, width: int = 1400, height: int = 4000, timeout: float = 120.0
) -> Path:
    """Render `html` in headless Chromium at width x height pixels and write the screenshot to `png`.

    Raises ChromiumMissingError when no Chromium is installed, FileNotFoundError when `html` does not
    exist, RuntimeError (with Chromium's output) when it fails or writes no image, and
    subprocess.TimeoutExpired after `timeout` seconds.
    """
    binary = find_chromium()
    if binary is None:
        raise ChromiumMissingError(
            "chromium is not installed (not on PATH, not /usr/bin/chromium): apt-get install chromium"
        )
    page = Path(html).resolve()
    if not page.is_file():
        raise FileNotFoundError(f"no such page: {page}")
    out = Path(png).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)  # so a stale image never passes for this page's
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={profile}",  # a fresh profile: no first-run state, no lock of another run
            f"--screenshot={out}",
            f"--window-size={width},{height}",
            page.as_uri(),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        tail = (done.stderr or done.stdout or "").strip().splitlines()[-5:]
        raise RuntimeError(f"chromium exited {done.returncode} without a screenshot: " + " | ".join(tail))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Screenshot an HTML report with headless Chromium.")
    ap.add_argument("html", help="the page, e.g. SWEEP_DIR/sweep.html")
    ap.add_argument("png", help="where the screenshot goes")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=4000)
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before Chromium is given up on")
    args = ap.parse_args(argv)
    try:
        out = screenshot(args.html, args.png, args.width, args.height, args.timeout)
    except ChromiumMissingError as exc:
        print(f"screenshot_report: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"screenshot_report: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
