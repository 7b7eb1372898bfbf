"""report.md: the run's verdict, reasons and tables in Markdown, with the memory chart as a PNG."""

from __future__ import annotations

from typing import Sequence

from harness.report import memory_section, tables
from harness.report.model import RunReport

BANNER_ICON = {"PASS": "✅", "FAIL": "❌", "INCONCLUSIVE": "⚠️", "ABORTED": "⏹️"}


def render_markdown(report: RunReport, memory_png: str | None = "memory.png",
                    split_png: str | None = None) -> str:
    """The report as Markdown; `memory_png` and `split_png` are the memory and "where the
    memory went" charts' file names next to it (None: no such chart)."""
    lines: list[str] = []
    banner = report.banner
    title = f"{report.scenario_name} on Milvus {report.milvus_version or '?'}"
    lines += [f"# {BANNER_ICON.get(banner, '')} {banner}: {title}".replace("#  ", "# "), ""]
    status = [f"status {report.status}"]
    if report.verdict and report.verdict != banner:
        status.append(f"verdict {report.verdict}")
    status.append(f"target {report.target or '-'}")
    status.append(f"run `{report.run_id}`")
    lines += [" · ".join(status), ""]
    if report.reasons:
        lines += [f"- {_inline(reason)}" for reason in report.reasons] + [""]

    lines += ["## Memory", ""]
    if memory_png:
        lines += [f"[![Memory over time per component]({memory_png})]({memory_png})", ""]
    else:
        lines += ["No memory samples were recorded.", ""]
    header, rows = tables.component_table(report)
    lines += _table(header, rows) if rows else ["No components were watched."]
    lines.append("")

    lines += _memory_split(report, split_png)
    header, rows = tables.recovery_table(report)
    if rows:
        lines += ["## Recovery after each restart", ""] + _table(header, rows) + [""]
    lines += ["## Rows", ""] + _pairs(tables.rows_table(report)) + [""]
    lines += ["## Inserts", ""] + _pairs(tables.inserts_table(report)) + [""]
    rules = report.rules
    if rules:
        lines += ["## Rules", ""]
        lines += _table(["Rule", "Result", "Detail"],
                        [[r.name, "passed" if r.passed else "**failed**", _inline(r.message)] for r in rules])
        lines.append("")
    lines += ["## Run", ""] + _pairs(tables.facts(report)) + [""]
    applied = tables.values_applied(report)
    if applied:
        lines += ["## Helm values applied", "", "```yaml", applied.rstrip(), "```", ""]
    parameters = tables.scenario_parameters(report)
    if parameters:
        lines += ["## Scenario parameters", ""] + _table(["Parameter", "Value"], parameters) + [""]

    lines += ["## Events", ""]
    if report.events:
        lines += _table(["Elapsed", "Time (UTC)", "Component", "Event", "Detail"],
                        [[f"+{report.elapsed(e.t):.1f} s", tables.fmt_clock(e.t)[11:19], e.component,
                          e.type, _inline(e.detail)] for e in report.events])
    else:
        lines.append("No events were recorded.")
    lines.append("")

    lines += ["## Files", ""] + [f"- [{name}]({name}{'/' if name == 'logs' else ''}): {what}"
                                  for name, what in tables.run_files(report, exclude="report.md")] + [""]
    return "\n".join(lines)


def _memory_split(report: RunReport, split_png: str | None) -> list[str]:
    rows = memory_section.split_rows(report)
    header, sites = memory_section.sites_table(memory_section.top_allocation_sites(report))
    if not rows and not split_png and not sites:
        return []
    lines = [f"## {memory_section.TITLE}", ""]
    if split_png:
        lines += [f"[![{memory_section.TITLE}]({split_png})]({split_png})", ""]
    lines += _pairs(rows) + [""] if rows else []
    if sites:
        lines += ["Top allocation sites at the last heap profile before the death:", ""]
        lines += _table(header, sites) + [""]
    return lines


def _pairs(rows: Sequence[tuple[str, str]]) -> list[str]:
    return _table(["", ""], [[f"**{label}**", _inline(value)] for label, value in rows])


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def _cell(text: str) -> str:
    """Table cells cannot hold a pipe or a line break."""
    return text.replace("|", "\\|").replace("\n", " ")


def _inline(text: str) -> str:
    """Text as-is but for characters that would start HTML in Markdown viewers."""
    return text.replace("<", "&lt;").replace(">", "&gt;")
