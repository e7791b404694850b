"""The document and figure engine shared by the run report (report/) and the atlas report
(atlas_report/): number formatting, a small block document rendered as Markdown and as one
self-contained HTML file, figures drawn on matplotlib's Agg canvas (no pyplot, no global state),
and the commit that writes a report's files together.

    doc, figs = Doc(), Figures(root)
    doc.h(1, "Title"); doc.p("text with `code` and **bold**")
    rel, why = figs.draw("success.png", draw_fn, *args)     # draw_fn(fig, *args) -> None or a reason
    doc.fig(rel, "caption", why)
    paths = finish_report(doc, figs, root, "report", "Title")   # report.md, report.html, figures/*.png

The files a report reads go through deepdig_fast.readers (read_json, FolderFiles); finish_report
lists what FolderFiles could not use and then raises ReportIncompleteError, so a report missing a
section never passes for a complete one.

finish_report writes every file of a report as one group (io.atomic_write_group): each file is
written to a temporary file first and only then are all renamed into place, so a failure while
writing (a full disk, say) leaves the previous report intact, never a new report.md beside an old
report.html.
"""

from __future__ import annotations

import base64
import html
import io
import math
import numbers
import re
from pathlib import Path
from typing import Any

from deepdig_fast.io import atomic_write_group
from deepdig_fast.readers import MAX_INT, FolderFiles, ReportIncompleteError

__all__ = [
    "RC_PARAMS",
    "num",
    "fmt",
    "fmt_g",
    "pct",
    "int_text",
    "secs",
    "Figures",
    "Doc",
    "finish_report",
]

RC_PARAMS: dict[str, Any] = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "figure.titlesize": 13,
}


# --------------------------------------------------------------------------------------------------
# number formatting ("–" for a missing or non-finite value)
# --------------------------------------------------------------------------------------------------


def num(v) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond a float's range
        return None
    return f if math.isfinite(f) else None


def fmt(v, digits: int = 2) -> str:
    f = num(v)
    if f is None:
        return "–"
    return f"{f:.{digits}f}"


def fmt_g(v, digits: int = 3) -> str:
    f = num(v)
    return "–" if f is None else f"{f:.{digits}g}"


def pct(v, digits: int = 1) -> str:
    f = num(v)
    return "–" if f is None else f"{100 * f:.{digits}f}%"


def int_text(v) -> str:
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        return f"{int(v):,}" if abs(int(v)) <= MAX_INT else "–"  # exact, and never a thousand-digit cell
    f = num(v)
    return "–" if f is None else f"{int(f):,}"


def secs(v) -> str:
    f = num(v)
    if f is None:
        return "–"
    if f < 120:
        return f"{f:.1f} s"
    return f"{f / 60:.1f} min"


# --------------------------------------------------------------------------------------------------
# figures and documents
# --------------------------------------------------------------------------------------------------


class Figures:
    """Draws figures (PNG bytes, kept in memory until finish_report commits them to root/figures)
    and remembers which were drawn or why not."""

    def __init__(self, root: Path):
        self.root = root
        self.images: dict[str, bytes] = {}  # "figures/<name>" -> PNG bytes
        self.errors: list[str] = []

    @property
    def written(self) -> dict[str, Path]:
        """{relative path: destination} of every figure drawn (on disk once committed)."""
        return {rel: self.root / rel for rel in self.images}

    def save(self, fig, name: str) -> str:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, facecolor="white")
        rel = f"figures/{name}"
        self.images[rel] = buf.getvalue()
        return rel

    def draw(self, name: str, fn, *args) -> tuple[str | None, str | None]:
        """(relative path, None) or (None, why) -- a failing figure is reported, not raised."""
        import matplotlib
        from matplotlib.figure import Figure

        try:
            with matplotlib.rc_context(RC_PARAMS):  # type: ignore[arg-type]
                fig = Figure(layout="constrained")
                out = fn(fig, *args)
                if out is not None:  # fn declined: a reason
                    return None, out
                return self.save(fig, name), None
        except Exception as exc:  # a report must not take a finished run down with it
            msg = f"figure {name} could not be drawn: {type(exc).__name__}: {exc}"
            self.errors.append(msg)
            return None, msg


class Doc:
    """A document as a list of blocks (headings, paragraphs, lists, notes, tables, figures), rendered
    as Markdown or as a self-contained HTML page with the figures embedded."""

    def __init__(self):
        self.blocks: list[tuple] = []

    def h(self, level: int, text: str):
        self.blocks.append(("h", level, text))

    def p(self, text: str):
        self.blocks.append(("p", text))

    def ul(self, items: list[str]):
        self.blocks.append(("ul", items))

    def note(self, text: str):
        self.blocks.append(("note", text))

    def table(self, header: list[str], rows: list[list[str]]):
        self.blocks.append(("table", header, rows))

    def fig(self, rel: str | None, caption: str, why: str | None = None):
        if rel is None:
            self.note(f"Figure not drawn: {why}.")
        else:
            self.blocks.append(("fig", rel, caption))

    # ---- Markdown
    def markdown(self) -> str:
        out = []
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                out.append("#" * b[1] + " " + b[2])
            elif kind == "p":
                out.append(b[1])
            elif kind == "ul":
                out.append("\n".join(f"- {i}" for i in b[1]))
            elif kind == "note":
                out.append(f"> **Note.** {b[1]}")
            elif kind == "table":
                esc = lambda c: str(c).replace("|", "\\|").replace("\n", " ")  # noqa: E731
                lines = ["| " + " | ".join(esc(c) for c in b[1]) + " |", "|" + "|".join("---" for _ in b[1]) + "|"]
                lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in b[2]]
                out.append("\n".join(lines))
            elif kind == "fig":
                out.append(f"![{b[2].split('.')[0]}]({b[1]})\n\n*{b[2]}*")
        return "\n\n".join(out) + "\n"

    # ---- HTML
    @staticmethod
    def _inline(text: str) -> str:
        s = html.escape(text, quote=False)
        s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
        s = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)
        s = re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"<em>\1</em>", s)
        return s

    def html(self, root: Path, title: str, images: dict[str, bytes] | None = None) -> str:
        """The page; figure bytes come from `images` (relative path -> PNG) or else from root."""
        images = images or {}
        body = []
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                body.append(f"<h{b[1]}>{self._inline(b[2])}</h{b[1]}>")
            elif kind == "p":
                body.append(f"<p>{self._inline(b[1])}</p>")
            elif kind == "ul":
                body.append("<ul>" + "".join(f"<li>{self._inline(i)}</li>" for i in b[1]) + "</ul>")
            elif kind == "note":
                body.append(f'<div class="note"><strong>Note.</strong> {self._inline(b[1])}</div>')
            elif kind == "table":
                head = "".join(f"<th>{self._inline(str(c))}</th>" for c in b[1])
                rows = "".join(
                    "<tr>" + "".join(f"<td>{self._inline(str(c))}</td>" for c in row) + "</tr>" for row in b[2]
                )
                body.append(
                    f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>'
                )
            elif kind == "fig":
                png = images.get(b[1])
                if png is None:
                    png = (root / b[1]).read_bytes()
                data = base64.b64encode(png).decode("ascii")
                body.append(
                    f'<figure><img alt="{html.escape(b[1])}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{self._inline(b[2])}</figcaption></figure>"
                )
        css = (
            "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;max-width:1000px;"
            "margin:2em auto;padding:0 1em;line-height:1.5;color:#222}"
            "h1{border-bottom:2px solid #ddd;padding-bottom:.3em}h2{margin-top:2em;border-bottom:1px solid #eee}"
            "table{border-collapse:collapse;margin:1em 0;font-size:.92em}"
            "th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}"
            "th{background:#f3f5f7}tr:nth-child(even) td{background:#fafafa}"
            ".scroll{overflow-x:auto}figure{margin:1.5em 0}img{max-width:100%;height:auto;border:1px solid #eee}"
            "figcaption{font-size:.92em;color:#444;margin-top:.4em}"
            "code{background:#f3f3f3;padding:0 .25em;border-radius:3px}"
            ".note{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em .8em;margin:1em 0}"
        )
        return (
            f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{css}</style>\n</head>\n<body>\n"
            + "\n".join(body)
            + "\n</body>\n</html>\n"
        )


def finish_report(
    doc: Doc,
    figs: Figures,
    root: Path,
    stem: str,
    title: str,
    extra: dict[str, bytes] | None = None,
    files: FolderFiles | None = None,
) -> dict[str, Path]:
    """List the files that could not be used (`files`) and the figures that failed, then write
    <stem>.md, <stem>.html, the figures and `extra` ({relative path: bytes}) as one group; return
    {relative path: Path} of every file written. When some of `files` could not be used, raise
    ReportIncompleteError (one line naming the first) once everything is written."""
    problems = list(files.problems.values()) if files is not None else []
    if figs.errors or problems:
        doc.h(2, "Problems while writing this report")
        doc.ul(problems + figs.errors)
    out: dict[str, bytes] = dict(figs.images)
    out.update(extra or {})
    out[f"{stem}.md"] = doc.markdown().encode("utf-8")
    out[f"{stem}.html"] = doc.html(root, title, figs.images).encode("utf-8")
    atomic_write_group({root / rel: data for rel, data in out.items()})
    paths = {rel: root / rel for rel in out}
    if problems:
        more = f" ({len(problems) - 1} more problems are listed in the report)" if len(problems) > 1 else ""
        message = f"{root / f'{stem}.md'} and {stem}.html are incomplete: {problems[0]}{more}"
        raise ReportIncompleteError(message, paths, problems)
    return paths
