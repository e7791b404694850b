"""The tables `deepdig run` and `deepdig atlas` print when they finish."""

from __future__ import annotations


def _fmt(v, pct=False):
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    return f"{100 * v:.1f}%" if pct else f"{v:.2f}"


def _print_summary(result, seconds, out) -> None:
    rows = result.summary_rows()
    print()
    print(f"{'direction':<10}{'method':<9}{'pairs':>7}{'success':>9}{'attempts':>10}{'forwards':>10}  note")
    for r in rows:
        print(
            f"{r['direction']:<10}{r['method']:<9}{r['pairs'] or 0:>7}{_fmt(r['success_rate'], True):>9}"
            f"{_fmt(r['mean_attempts_success']):>10}{r['forwards'] if r['forwards'] is not None else '-':>10}  {r['skipped'] or ''}"
        )
    print(f"\n'attempts' = mean attempts over successes. Finished in {seconds:.0f} s; results in {out}/results.json")


def _print_atlas(result, seconds, out) -> None:
    a = result.atlas
    rows = a["directions"]
    done = [r for r in rows if r["success_rate"] is not None]
    print(
        f"\natlas of {len(a['classes'])} classes, {len(rows)} directions, strategy {a['strategy']}: "
        f"{len(done)} with borderline samples, {len(rows) - len(done)} skipped"
    )
    print(f"{'direction':<10}{'pairs':>7}{'success':>9}{'attempts':>10}{'oscill.':>9}{'m1':>7}{'margin':>8}  note")
    for r in rows:
        print(
            f"{r['source']}->{r['target']:<7}{r['pairs'] or 0:>7}{_fmt(r['success_rate'], True):>9}"
            f"{_fmt(r['mean_attempts']):>10}{_fmt(r['oscillation']):>9}{_fmt(r['m1_borderline']):>7}"
            f"{_fmt(r['margin_l2_mean']):>8}  {(r['skipped'] or '')[:60]}"
        )
    written = ", atlas.html" if "atlas.html" in result.paths else ""
    print(f"\nFinished in {seconds:.0f} s; {out}/atlas.json, atlas.csv{written}")
