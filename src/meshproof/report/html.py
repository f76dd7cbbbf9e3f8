"""``index.html``: the page a person reads first. Self-contained: inline CSS and SVG,
plots as ``data:`` URIs, no script, nothing fetched.

Top: the result, the run's facts and a bar of verdicts; then a summary table
(one row per guarantee, a column per cluster); the run's traffic plot; then each
guarantee's story: the runbook's promise, the thresholds in force (overrides and
their reasons), the verdict, judgements and reason per cluster, the fix, the
evidence, and its plots (``meshproof.report.plots``).
"""

from __future__ import annotations

import json
from html import escape

from meshproof.report.clusters import ClusterVerdict, cluster_verdicts
from meshproof.report.model import ClusterResult, GuaranteeResult, Report
from meshproof.report.plots import Plot, describe_series, guarantee_plots, run_plots
from meshproof.run.results import MESH
from meshproof.sli.verdict import Verdict

__all__ = ["render_html"]

_LABEL = {
    Verdict.HELD: "held",
    Verdict.VIOLATED: "violated",
    Verdict.NOT_MEASURABLE: "not measurable",
    Verdict.INCONCLUSIVE: "inconclusive",
}
_COLOUR = {
    Verdict.HELD: "#1a7f37",
    Verdict.VIOLATED: "#cf222e",
    Verdict.NOT_MEASURABLE: "#9a6700",
    Verdict.INCONCLUSIVE: "#9a6700",
}
_RESULT_COLOUR = {"pass": "#1a7f37", "partial": "#9a6700", "fail": "#cf222e"}

_CSS = """
body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:70rem;padding:0 1rem;
  color:#1f2328}
h1{margin-bottom:.2rem} h2{margin-top:2.5rem;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa} code,pre{font:13px ui-monospace,monospace}
pre{background:#f6f8fa;padding:.5rem;overflow-x:auto;white-space:pre-wrap}
.badge{display:inline-block;padding:0 .5rem;border-radius:1rem;color:#fff;font-weight:600;
  white-space:nowrap}
.quote{border-left:4px solid #d0d7de;padding-left:.7rem;color:#57606a}
.loose{color:#cf222e;font-weight:600} .muted{color:#57606a}
figure{margin:1rem 0} figure img{max-width:100%;height:auto;border:1px solid #d0d7de}
figcaption{color:#57606a;font-size:13px}
td code{overflow-wrap:anywhere}
"""


def _badge(verdict: Verdict) -> str:
    return f'<span class="badge" style="background:{_COLOUR[verdict]}">{_LABEL[verdict]}</span>'


def _bar(report: Report) -> str:
    """A stacked bar of held / violated / not measurable, as inline SVG."""
    s = report.summary
    parts = [
        (len(s.held), Verdict.HELD),
        (len(s.violated), Verdict.VIOLATED),
        (len(s.not_measurable), Verdict.NOT_MEASURABLE),
    ]
    total = max(s.total, 1)
    x = 0.0
    rects = []
    for count, verdict in parts:
        width = 600 * count / total
        if count:
            rects.append(
                f'<rect x="{x:.1f}" y="0" width="{width:.1f}" height="24" '
                f'fill="{_COLOUR[verdict]}">'
                f"<title>{count} {_LABEL[verdict]}</title></rect>"
                f'<text x="{x + 6:.1f}" y="17" fill="#fff" font-size="13">'
                f"{count} {_LABEL[verdict]}</text>"
            )
        x += width
    return (
        f'<svg role="img" aria-label="verdicts" width="600" height="24" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(rects)}</svg>'
    )


def _value(value: object) -> str:
    series = describe_series(value)
    if series is not None:
        return escape(series)
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"<code>{escape(str(text))}</code>"


def _figure(plot: Plot) -> str:
    return (
        f'<figure><img src="{plot.data_uri}" alt="{escape(plot.alt)}">'
        f"<figcaption>{escape(plot.title)}</figcaption></figure>"
    )


def _judgements(c: ClusterResult) -> str:
    items = "".join(
        f"<li>{_badge(Verdict(j['verdict']))} {escape(str(j.get('reason', '')))}</li>"
        for j in c.judgements
        if j.get("verdict") in {v.value for v in Verdict}
    )
    return f"<p><b>Judgements:</b></p><ul>{items}</ul>" if items else ""


def _cluster(c: ClusterResult) -> str:
    rows = "".join(
        f"<tr><td><code>{escape(e.key)}</code></td><td>{_value(e.value)}</td>"
        f"<td>{escape(e.cluster or c.cluster)}</td><td class=muted>{escape(e.scenario)}</td></tr>"
        for e in c.evidence
    )
    evidence = (
        "<table><tr><th>evidence</th><th>value</th><th>cluster</th><th>scenario</th></tr>"
        f"{rows}</table>"
        if rows
        else "<p class=muted>no evidence recorded</p>"
    )
    fix = f"<p><b>Fix:</b> {escape(c.fix)}</p>" if c.fix else ""
    crashed = " <b>(the check could not run)</b>" if c.could_not_run else ""
    scenarios = ", ".join(escape(s.name) for s in c.scenarios)
    return (
        f"<h4>{escape(c.cluster)} {_badge(c.verdict)}{crashed}</h4>"
        f"<p>{escape(c.reason)}</p>{fix}{_judgements(c)}"
        f"<p class=muted>scenarios: {scenarios}</p>{evidence}"
    )


def _cite(lines: tuple[int, int]) -> str:
    first, last = lines
    return f"runbook L{first}" if first == last else f"runbook L{first}-{last}"


def _drill(g: GuaranteeResult) -> str:
    if g.drill is None:
        return ""
    rows = "".join(
        f"<tr><td><code>{escape(e.at)}</code></td><td>{escape(e.phase)}</td>"
        f"<td>{escape(e.cluster or '')}</td><td>{escape(e.description)}</td></tr>"
        for e in g.drill.events
    )
    head = "<tr><th>at</th><th>phase</th><th>cluster</th><th>what</th></tr>"
    return f"<h4>Timeline</h4><table>{head}{rows}</table>"


def _load(g: GuaranteeResult) -> str:
    if not g.load:
        return ""
    rows = "".join(
        f"<tr><td>{escape(lo.cluster or 'mesh')}</td><td>{escape(lo.source)}</td>"
        f"<td>{lo.users if lo.users is not None else ''}</td><td>{lo.requests}</td>"
        f"<td>{lo.failures}</td><td>{lo.rps:g}</td><td>"
        + ", ".join(f"p{float(q) * 100:g} {v:g} ms" for q, v in lo.percentiles_ms.items())
        + "</td></tr>"
        for lo in g.load
    )
    return (
        "<h4>Load</h4><table><tr><th>cluster</th><th>source</th><th>users</th><th>requests</th>"
        f"<th>failures</th><th>rps</th><th>client-side latency</th></tr>{rows}</table>"
    )


def _guarantee(g: GuaranteeResult) -> str:
    quotes = "".join(
        f'<p class="quote">{_cite(r.lines)} ({escape(r.section)}): “{escape(r.quote)}”</p>'
        for r in g.runbook
    )
    values = ", ".join(f"<code>{escape(k)}={v:g}</code>" for k, v in g.thresholds.values.items())
    overrides = "".join(
        f"<li{' class=loose' if o.loosened else ''}>{escape(o.name)}: {o.catalog_value:g} → "
        f"{o.target_value:g} ({'LOOSENED' if o.loosened else 'tightened'} by the target"
        f"{': ' + escape(o.reason) if o.reason else ''})</li>"
        for o in g.thresholds.overrides
    )
    clusters = "".join(_cluster(c) for c in g.clusters) or (
        f"<p>{escape(g.reason)}</p>" + (f"<p><b>Fix:</b> {escape(g.fix)}</p>" if g.fix else "")
    )
    return (
        f'<h2 id="{escape(g.id)}">{escape(g.id)} {_badge(g.verdict)}</h2>'
        f"<p><b>{escape(g.statement)}</b> <span class=muted>({g.tier}"
        f"{', destructive' if g.destructive else ''})</span></p>{quotes}"
        f"<p><b>Measured by:</b> {escape(g.measure)}</p>"
        f"<p><b>Thresholds:</b> {values}, window {g.thresholds.window_s}s</p>"
        f"{f'<ul>{overrides}</ul>' if overrides else ''}"
        f"<p><b>Verdict:</b> {escape(g.reason)}</p>{clusters}{_drill(g)}{_load(g)}"
        f"{''.join(_figure(p) for p in guarantee_plots(g))}"
    )


def _columns(report: Report, per_cluster: dict[str, dict[str, ClusterVerdict]]) -> list[str]:
    """The summary's cluster columns: the target's clusters, then any other (``mesh`` last)."""
    names = [c.name for c in report.run.clusters]
    extra = {key for verdicts in per_cluster.values() for key in verdicts} - set(names)
    return names + sorted(extra, key=lambda n: (n == MESH, n))


def _per_cluster(verdicts: dict[str, ClusterVerdict], columns: list[str]) -> str:
    return "".join(
        f'<td title="{escape(verdicts[name].reason)}">{_badge(verdicts[name].verdict)}</td>'
        if name in verdicts
        else "<td><span class=muted>—</span></td>"
        for name in columns
    )


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page."""
    run, s = report.run, report.summary
    order = [c.name for c in run.clusters]
    per_cluster = {
        g.id: {v.cluster: v for v in cluster_verdicts(g, order)} for g in report.guarantees
    }
    columns = _columns(report, per_cluster)
    rows = "".join(
        f'<tr><td><a href="#{escape(g.id)}">{escape(g.id)}</a></td><td>{g.tier}</td>'
        f"<td>{_badge(g.verdict)}</td>{_per_cluster(per_cluster[g.id], columns)}"
        f"<td>{escape(g.reason)}</td></tr>"
        for g in report.guarantees
    )
    heads = "".join(f"<th>{escape(name)}</th>" for name in columns)
    overview = "".join(_figure(p) for p in run_plots(report)) or (
        "<p class=muted>No latency or success-rate series over time were recorded in this run: "
        "the checks recorded totals over their windows, shown with each guarantee below.</p>"
    )
    clusters = ", ".join(f"{escape(c.name)} (context {escape(c.context)})" for c in run.clusters)
    errors = "".join(f"<li>{escape(e)}</li>" for e in run.errors)
    errors_html = f"<h3>The run itself had problems</h3><ul>{errors}</ul>" if errors else ""
    colour = _RESULT_COLOUR[s.result]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>meshproof {escape(run.profile)} on {escape(run.target)}: {s.result}</title>
<link rel="icon" href="data:,">
<style>{_CSS}</style></head><body>
<h1>meshproof: {escape(run.profile)} on {escape(run.target)}
<span class="badge" style="background:{colour}">{s.result}</span></h1>
<p><b>{len(s.held)}/{s.total} guarantees held</b>, {len(s.violated)} violated,
{len(s.not_measurable)} not measurable.</p>
{_bar(report)}
<p class=muted>run {escape(run.run_id)} · {escape(run.started)} → {escape(run.finished)} ·
clusters {clusters} · meshproof {escape(run.meshproof_version)} · runbook
{escape(run.runbook.get("title", ""))} v{escape(run.runbook.get("version", ""))}
· exit code {run.exit_code}</p>
{errors_html}
<table><tr><th>guarantee</th><th>tier</th><th>verdict</th>{heads}<th>why</th></tr>{rows}</table>
{overview}
{"".join(_guarantee(g) for g in report.guarantees)}
</body></html>
"""
