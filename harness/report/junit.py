"""junit.xml: the verdict in the format CI systems show as test results.

One testsuite "milvus-harness". With the verdict's rules in summary.json, one testcase per
rule (a broken rule is a failure); without them, one testcase named after the scenario. FAIL
puts the reasons in a <failure>; INCONCLUSIVE skips (the run could not test anything); a run
without a verdict (killed before it) is an <error>.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

from harness.report.model import RunReport

SUITE = "milvus-harness"


def render_junit(report: RunReport) -> str:
    """The JUnit XML document for a run, as text."""
    verdict = report.verdict
    reasons = "\n".join(report.reasons)
    classname = f"{SUITE}.{report.scenario_name}"
    duration = report.duration_s or 0.0
    # counts are filled in below; created here so they come first in the element
    suite = ET.Element("testsuite", name=SUITE, tests="0", failures="0", errors="0", skipped="0",
                       timestamp=_timestamp(report), time=f"{duration:.3f}")
    properties = ET.SubElement(suite, "properties")
    for name, value in (("run_id", report.run_id), ("status", report.status), ("verdict", verdict or ""),
                        ("target", report.target or ""), ("milvus_version", report.milvus_version or ""),
                        ("scenario", report.scenario_name),
                        ("memory_limit_bytes", str(report.memory_limit_bytes or ""))):
        ET.SubElement(properties, "property", name=name, value=value)

    rules = report.rules
    if rules:
        cases = [(rule.name, rule.passed, rule.message) for rule in rules]
        if verdict == "FAIL" and all(passed for _, passed, _ in cases):
            cases.append(("verdict", False, reasons))  # FAIL must show red even if no rule says why
    else:
        cases = [(report.scenario_name, verdict == "PASS", reasons)]

    failures = errors = skipped = 0
    for name, passed, message in cases:
        case = ET.SubElement(suite, "testcase", name=name, classname=classname,
                             time=f"{duration if len(cases) == 1 else 0.0:.3f}")
        if verdict is None:
            errors += 1
            element = ET.SubElement(case, "error", message=_first_line(reasons), type=report.status)
            element.text = reasons
        elif verdict == "INCONCLUSIVE":
            skipped += 1
            ET.SubElement(case, "skipped", message=_first_line(reasons) or "inconclusive")
        elif not passed:
            failures += 1
            element = ET.SubElement(case, "failure", message=_first_line(message or reasons), type=verdict)
            element.text = message or reasons
        if message and passed:
            ET.SubElement(case, "system-out").text = message
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def _timestamp(report: RunReport) -> str:
    started = report.started
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started)) if started else ""


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""
