"""The bisect's report: reports/bisect-<id>/ with summary.json, bisect.md, index.html and
peak-memory.svg, rewritten after every tested version (beside matrix_page.py, the matrix's).

It reads only the search's steps (harness/compare/bisect_search.py) and each run's summary.
"""

from __future__ import annotations

import html
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from harness.compare.bisect_search import BisectResult, Outcome, RunOutcome, Step
from harness.compare.run_keys import component_total, crash_line, memory_limit_bytes, peak_memory_bytes
from harness.judge.verdict import Verdict
from harness.rundir import write_json, write_text
from harness.units import format_bytes

_COLOURS = {Verdict.PASS: "#2e7d32", Verdict.FAIL: "#c62828", Verdict.INCONCLUSIVE: "#757575"}


def _outcome_of(step: Step) -> RunOutcome:
    if isinstance(step.result, RunOutcome):
        return step.result
    return RunOutcome(step.verdict, None, {})


@dataclass
class BisectPage:
    """Renders reports/bisect-<id>/ from the steps so far; rewritten after every step."""

    path: Path
    versions: tuple[str, ...]
    good: str
    bad: str
    find_fix: bool
    context: dict[str, Any]
    steps: list[Step] = field(default_factory=list)

    @property
    def range(self) -> tuple[str, ...]:
        ends = sorted((self.versions.index(self.good), self.versions.index(self.bad)))
        return self.versions[ends[0] : ends[1] + 1]

    def _link(self, run_dir: Path | None) -> str | None:
        if run_dir is None:
            return None
        target = run_dir / "report.html" if (run_dir / "report.html").exists() else run_dir
        return os.path.relpath(target, self.path)

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for step in self.steps:
            run = _outcome_of(step)
            summary = run.summary or {}
            rows.append({
                "step": step.number,
                "version": step.version,
                "role": step.role,
                "verdict": step.verdict.value,
                "peak_memory_bytes": peak_memory_bytes(summary),
                "limit_bytes": memory_limit_bytes(summary),
                "oom_kills": component_total(summary, "oom_kills"),
                "restarts": component_total(summary, "restarts"),
                "rows_acked": (summary.get("rows") or {}).get("acked") if isinstance(summary.get("rows"), Mapping) else None,
                "time_to_verdict_s": summary.get("time_to_verdict_s"),
                "reasons": [str(r) for r in summary.get("reasons") or []],
                "crash": crash_line(summary),
                "run_dir": None if run.run_dir is None else str(run.run_dir),
                "reused": run.reused,
            })
        return rows

    def write(self, status: str, result: BisectResult | None = None, reason: str | None = None) -> None:
        rows = self.rows()

        def side(step: Step | None) -> dict[str, Any] | None:
            if step is None:
                return None
            run_dir = _outcome_of(step).run_dir
            return {"version": step.version, "run_dir": None if run_dir is None else str(run_dir)}

        summary = {
            "kind": "bisect",
            "id": self.path.name.removeprefix("bisect-"),
            "status": status,
            "mode": "find-fix" if self.find_fix else "first-bad",
            "good": self.good,
            "bad": self.bad,
            "range": list(self.range),
            "outcome": result.outcome.value if result else None,
            "exit_code": result.exit_code if result else None,
            "reason": result.reason if result else reason,
            "tested": rows,
            "last_good": side(result.last_good) if result else None,
            "first_bad": side(result.first_bad) if result else None,
            "last_bad": side(result.last_bad) if result else None,
            "first_good": side(result.first_good) if result else None,
            "candidates": list(result.candidates) if result else [],
            "compare_link": result.compare_link if result else None,
            "context": self.context,
        }
        write_json(self.path / "summary.json", summary)
        svg = self.chart(rows, result)
        write_text(self.path / "peak-memory.svg", svg)
        write_text(self.path / "bisect.md", self.markdown(summary, rows))
        write_text(self.path / "index.html", self.html(summary, rows, svg))

    def _title(self) -> str:
        return "Bisect: first good version (find fix)" if self.find_fix else "Bisect: first bad version"

    def _headline(self, summary: Mapping[str, Any]) -> str:
        if summary["status"] == "RUNNING":
            return f"running: {len(summary['tested'])} version(s) tested so far"
        return str(summary["reason"] or summary["status"])

    def markdown(self, summary: Mapping[str, Any], rows: list[dict[str, Any]]) -> str:
        def cell(text: Any) -> str:
            return str(text).replace("|", "\\|").replace("\n", " ")

        lines = [f"# {self._title()}", "", f"**{cell(summary['status'])}**: {cell(self._headline(summary))}", ""]
        lines += [f"- {k}: {cell(v)}" for k, v in [("good", self.good), ("bad", self.bad), *self.context.items()]]
        if summary["compare_link"]:
            lines.append(f"- changes: <{summary['compare_link']}>")
        lines += ["", "![peak memory of each tested version](peak-memory.svg)", "",
                  "| version | verdict | step | peak memory | OOM kills | restarts | rows acked | verdict after s | crash | reasons | run |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |"]
        for row in sorted(rows, key=lambda r: self.versions.index(r["version"])):
            link = self._link(Path(row["run_dir"])) if row["run_dir"] else None
            run = f"[{cell(Path(row['run_dir']).name)}]({link})" if link else "-"
            lines.append("| " + " | ".join([
                f"`{cell(row['version'])}`", row["verdict"], str(row["step"]),
                format_bytes(row["peak_memory_bytes"]), _dash(row["oom_kills"]), _dash(row["restarts"]),
                _dash(row["rows_acked"]), _dash(row.get("time_to_verdict_s")), cell(row.get("crash") or "-"),
                cell("; ".join(row["reasons"]) or "-"),
                run + (" (reused)" if row["reused"] else ""),
            ]) + " |")
        return "\n".join(lines) + "\n"

    def html(self, summary: Mapping[str, Any], rows: list[dict[str, Any]], svg: str) -> str:
        e = html.escape
        facts = [("good", self.good), ("bad", self.bad), *self.context.items()]
        body = [f"<h1>{e(self._title())}</h1>",
                f'<p class="outcome {e(str(summary["outcome"] or summary["status"]).lower())}">'
                f"<b>{e(str(summary['status']))}</b>: {e(self._headline(summary))}</p>",
                "<dl>" + "".join(f"<dt>{e(str(k))}</dt><dd>{e(str(v))}</dd>" for k, v in facts) + "</dl>"]
        if summary["compare_link"]:
            url = e(summary["compare_link"])
            body.append(f'<p>Commits in the boundary range: <a href="{url}">{url}</a></p>')
        body.append(f'<figure>{svg}<figcaption>Peak memory of each tested version (highest component).</figcaption></figure>')
        head = ["version", "verdict", "step", "peak memory", "OOM kills", "restarts", "rows acked", "verdict after s",
                "crash", "reasons", "run"]
        table = ["<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
        for row in sorted(rows, key=lambda r: self.versions.index(r["version"])):
            link = self._link(Path(row["run_dir"])) if row["run_dir"] else None
            run = f'<a href="{e(link)}">{e(Path(row["run_dir"]).name)}</a>' if link else "-"
            verdict = row["verdict"]
            table.append(
                "<tr>" + "".join([
                    f"<td><code>{e(row['version'])}</code></td>",
                    f'<td class="v-{verdict.lower()}">{verdict}</td>',
                    f"<td>{row['step']}</td>",
                    f"<td>{e(format_bytes(row['peak_memory_bytes']))}</td>",
                    f"<td>{_dash(row['oom_kills'])}</td>",
                    f"<td>{_dash(row['restarts'])}</td>",
                    f"<td>{_dash(row['rows_acked'])}</td>",
                    f"<td>{_dash(row.get('time_to_verdict_s'))}</td>",
                    f'<td class="crash">{e(row.get("crash") or "-")}</td>',
                    f"<td>{e('; '.join(row['reasons']) or '-')}</td>",
                    f"<td>{run}{' (reused)' if row['reused'] else ''}</td>",
                ]) + "</tr>")
        table.append("</tbody></table>")
        style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}"
                 "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
                 "dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dd{margin:0}"
                 + "".join(f".v-{v.value.lower()}{{color:{c};font-weight:bold}}" for v, c in _COLOURS.items()))
        return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{e(self._title())}</title><style>{style}</style></head><body>\n"
                + "\n".join(body + table) + "\n</body></html>\n")

    def chart(self, rows: list[dict[str, Any]], result: BisectResult | None) -> str:
        """An inline SVG dot chart: every version of the range on x, peak memory of tested ones on y."""
        e = html.escape
        span = self.range
        position = {version: i for i, version in enumerate(span)}
        # Version labels run vertically under their dot, so neighbours overlap only when the
        # dots nearly touch; the bottom margin grows with the longest label (~6 px a character).
        longest = max((len(r["version"]) for r in rows), default=4)
        left, right, top, bottom, plot_h = 80, 100, 28, 16 + 6 * longest, 190
        width, height = 780, top + plot_h + bottom
        plot_w = width - left - right
        peaks = [r["peak_memory_bytes"] for r in rows if r["peak_memory_bytes"]]
        limits = [r["limit_bytes"] for r in rows if r["limit_bytes"]]
        # Gridlines at a power-of-two step (256 MiB, 512 MiB, 1 GiB, ...) so labels read round.
        highest = max(peaks + limits + [2**20]) * 1.05
        step = 2**20
        while highest / step > 5:
            step *= 2
        ticks = math.ceil(highest / step)
        top_value = ticks * step

        def x(version: str) -> float:
            return left + (plot_w * (position[version] + 0.5) / len(span))

        def y(value: float) -> float:
            return top + plot_h * (1 - value / top_value)

        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                 f'viewBox="0 0 {width} {height}" role="img" aria-label="peak memory per tested version" '
                 'font-family="sans-serif" font-size="11">',
                 f'<text x="{left}" y="14" font-weight="bold">peak memory</text>']
        for n, (verdict, colour) in enumerate(_COLOURS.items()):
            lx = left + 110 + n * 100
            parts.append(f'<circle cx="{lx}" cy="10" r="4" fill="{colour}"/>'
                         f'<text x="{lx + 8}" y="14">{verdict.value}</text>')
        for i in range(ticks + 1):
            value = step * i
            parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#e0e0e0"/>'
                         f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{e(format_bytes(value))}</text>')
        if limits:
            # Labelled in the right margin, where no dot can sit on it.
            limit = max(limits)
            parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(limit):.1f}" y2="{y(limit):.1f}" '
                         'stroke="#c62828" stroke-dasharray="6 4"/>'
                         f'<text x="{width - right + 6}" y="{y(limit) + 4:.1f}" fill="#c62828">'
                         f'limit {e(format_bytes(limit))}</text>')
        tested = {r["version"] for r in rows}
        for version in span:
            if version not in tested:  # untested versions: a tick, so the spacing shows the range
                parts.append(f'<line x1="{x(version):.1f}" x2="{x(version):.1f}" y1="{top + plot_h}" '
                             f'y2="{top + plot_h + 4}" stroke="#9e9e9e"><title>{e(version)}: not tested</title></line>')
        if result is not None and result.older and result.newer:
            a, b = x(result.older.version), x(result.newer.version)
            if result.outcome == Outcome.FOUND:  # the change happened between these two dots
                parts.append(f'<line x1="{(a + b) / 2:.1f}" x2="{(a + b) / 2:.1f}" y1="{top}" y2="{top + plot_h}" '
                             'stroke="#424242" stroke-dasharray="3 3"/>')
            else:  # undecided: shade the versions any of which may be the first changed one
                parts.append(f'<rect x="{a:.1f}" y="{top}" width="{b - a:.1f}" height="{plot_h}" fill="#9e9e9e" '
                             'fill-opacity="0.18"><title>undecided: the change is in here</title></rect>')
        for row in rows:
            verdict = Verdict(row["verdict"])
            cx, peak = x(row["version"]), row["peak_memory_bytes"]
            cy = y(peak) if peak else top + plot_h
            # No peak recorded (the version never started): a hollow dot on the axis.
            fill = _COLOURS[verdict] if peak else "white"
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="{fill}" stroke="{_COLOURS[verdict]}" '
                         f'stroke-width="2"><title>{e(row["version"])}: {verdict.value}, peak '
                         f'{e(format_bytes(peak))}</title></circle>'
                         f'<text transform="translate({cx + 3.5:.1f},{top + plot_h + 8}) rotate(-90)" '
                         f'text-anchor="end" font-size="10">{e(row["version"])}</text>')
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#424242"/>')
        parts.append("</svg>")
        return "".join(parts)


def _dash(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
