"""Plots of the HTML report, drawn with matplotlib (Agg) and embedded as ``data:`` URIs.

Each plot draws only what the report holds; a guarantee without the data a plot
needs gets no plot, or one that says plainly what was not recorded:

- **traffic over the run**: latency and success-rate series, fault windows
  shaded. A series is an evidence value shaped ``{"points": [[t, v], ...],
  "unit": "ms" | "ratio", "label": ...}`` (``t`` unix seconds or ISO 8601), as
  Prometheus range queries return them. Fault windows come from the drill
  timeline: phase ``fault`` (or ``fault-start``) opens one, ``rollback`` (or
  ``fault-end``, ``heal``) closes that cluster's (else the oldest open one); an
  unclosed window runs to the plot's end and says so.
- **split histogram**: per judged cluster, the requests each subset got against
  the count its weight expects, with the test's p-value (judgements whose
  evidence has ``counts``, ``expected``, ``n`` and ``p_value``).
- **latency judgements**: per judged path, the share of requests at or under
  the bound (a range when the bound lies between buckets) against the share the
  quantile needs, and the interpolated quantile against the bound (judgements
  whose evidence has ``share_low``, ``share_high``, ``required_share`` and
  ``threshold_ms``).
- **drill timeline**: the drill's events per cluster in time order.
- **client-side latency**: the load summaries' percentiles.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meshproof.report.model import GuaranteeResult, Report

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "FAULT_END_PHASES",
    "FAULT_START_PHASES",
    "FaultWindow",
    "Plot",
    "Series",
    "describe_series",
    "fault_windows",
    "guarantee_plots",
    "run_plots",
    "series_of",
]

FAULT_START_PHASES = frozenset({"fault", "fault-start"})
FAULT_END_PHASES = frozenset({"rollback", "fault-end", "heal"})
_UNITS = {"ms": "latency (ms)", "ratio": "success rate"}
_SHADE = "#cf222e"
_DPI = 100


@dataclass(frozen=True, slots=True)
class Plot:
    """One embedded image: what it shows, and the PNG as a ``data:`` URI."""

    title: str
    alt: str
    data_uri: str


@dataclass(frozen=True, slots=True)
class Series:
    """A recorded series: ``(time, value)`` points in time order."""

    label: str
    unit: str
    cluster: str | None
    points: tuple[tuple[dt.datetime, float], ...]


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """When a fault was in force; ``end`` is None when no rollback was recorded."""

    cluster: str | None
    start: dt.datetime
    end: dt.datetime | None
    description: str


def _when(value: Any) -> dt.datetime | None:
    """A datetime (UTC) from unix seconds or ISO 8601 text; None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and math.isfinite(value):
        return dt.datetime.fromtimestamp(float(value), dt.UTC)
    if isinstance(value, str) and value:
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _series(key: str, value: Any, cluster: str | None) -> Series | None:
    if not isinstance(value, Mapping) or value.get("unit") not in _UNITS:
        return None
    raw = value.get("points")
    if not isinstance(raw, list):
        return None
    points = []
    for point in raw:
        if not isinstance(point, list | tuple) or len(point) != 2:
            return None
        when, number = _when(point[0]), _number(point[1])
        if when is None or number is None:
            return None
        points.append((when, number))
    if not points:
        return None
    label = str(value.get("label") or key) + (f" ({cluster})" if cluster else "")
    return Series(label, str(value["unit"]), cluster, tuple(sorted(points)))


def describe_series(value: Any) -> str | None:
    """A one-line account of an evidence value that is a series; None for other values."""
    series = _series("series", value, None)
    if series is None:
        return None
    values = [v for _, v in series.points]
    first, last = series.points[0][0], series.points[-1][0]
    return (
        f"{series.label}: {len(values)} points ({series.unit}) from {first:%H:%M:%S} to "
        f"{last:%H:%M:%S} UTC, min {min(values):g}, max {max(values):g} (plotted below)"
    )


def series_of(g: GuaranteeResult) -> list[Series]:
    """The latency and success-rate series a guarantee's evidence holds."""
    found = (
        _series(e.key, e.value, e.cluster or (c.cluster if c.cluster != "mesh" else None))
        for c in g.clusters
        for e in c.evidence
    )
    return [s for s in found if s is not None]


def fault_windows(g: GuaranteeResult) -> list[FaultWindow]:
    """The fault windows of a guarantee's drill timeline, per cluster, in time order."""
    if g.drill is None:
        return []
    windows: list[FaultWindow] = []
    open_: dict[str | None, tuple[dt.datetime, str]] = {}
    for event in g.drill.events:
        when = _when(event.at)
        phase = event.phase.lower()
        if when is None:
            continue
        if phase in FAULT_START_PHASES and event.cluster not in open_:
            open_[event.cluster] = (when, event.description)
        elif phase in FAULT_END_PHASES and open_:
            # The end closes its cluster's fault, or else the oldest one still open.
            cluster = event.cluster if event.cluster in open_ else next(iter(open_))
            start, description = open_.pop(cluster)
            windows.append(FaultWindow(cluster, start, when, description))
    windows.extend(FaultWindow(c, s, None, d) for c, (s, d) in open_.items())
    return sorted(windows, key=lambda w: w.start)


def _figure(width: float, height: float) -> Figure:
    # matplotlib is imported when a plot is drawn: the CLI need not pay for it otherwise.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _png(fig: Figure) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    # The Agg canvas directly: no pyplot, no display, no global backend state.
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _x(when: dt.datetime) -> float:
    """Matplotlib's date number of ``when`` (days since its epoch, UTC)."""
    from matplotlib.dates import date2num

    return float(date2num(when))


def _time_axis(ax: Axes) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    # Whole times at every tick, not a bare "30" for half a minute.
    formats = ["%Y", "%b", "%d", "%H:%M", "%H:%M", "%H:%M:%S"]
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=dt.UTC, formats=formats))


def _shade(ax: Axes, windows: Sequence[FaultWindow], right: dt.datetime) -> None:
    """Shade each distinct fault window once (clusters often share one fault)."""
    distinct = {(w.start, w.end): w for w in windows}
    for i, w in enumerate(distinct.values()):
        end = w.end or right
        label = "fault" if w.end else "fault (no rollback recorded)"
        ax.axvspan(
            _x(w.start),
            _x(end),
            color=_SHADE,
            alpha=0.12 if w.end else 0.22,
            label=label if i == 0 or not w.end else None,
        )


def _traffic(title: str, series: Sequence[Series], windows: Sequence[FaultWindow],
             limits: Mapping[str, float]) -> Plot:
    units = [u for u in _UNITS if any(s.unit == u for s in series)]
    times = [t for s in series for t, _ in s.points] + [w.start for w in windows] + [
        w.end for w in windows if w.end
    ]
    right = max(times)
    fig = _figure(9, 2.6 * max(len(units), 1))
    axes = fig.subplots(max(len(units), 1), 1, sharex=True, squeeze=False)[:, 0]
    if not units:
        ax = axes[0]
        ax.text(0.5, 0.5, "no latency or success-rate series recorded", ha="center",
                va="center", transform=ax.transAxes, color="#57606a")
        ax.set_yticks([])
        ax.set_xlim(_x(min(times)), _x(right + dt.timedelta(seconds=1)))
        _shade(ax, windows, right)
    for ax, unit in zip(axes, units, strict=False):
        for s in (s for s in series if s.unit == unit):
            ax.plot([_x(t) for t, _ in s.points], [v for _, v in s.points], marker=".",
                    label=s.label)
        limit = limits.get(unit)
        if limit is not None:
            ax.axhline(limit, color="#9a6700", linestyle="--", label=f"threshold {limit:g}")
        _shade(ax, windows, right)
        ax.set_ylabel(_UNITS[unit])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    _time_axis(axes[-1])
    axes[-1].set_xlabel("time (UTC)")
    fig.suptitle(title)
    described = ", ".join(s.label for s in series) or "no series"
    return Plot(title, f"{title}: {described}; {len(windows)} fault window(s)", _png(fig))


def _limits(g: GuaranteeResult) -> dict[str, float]:
    values = g.thresholds.values
    found = {}
    if "max_ms" in values:
        found["ms"] = values["max_ms"]
    ratio = next((v for k, v in values.items() if k.startswith("min_success")), None)
    if ratio is not None:
        found["ratio"] = ratio
    return found


def _split(g: GuaranteeResult) -> Plot | None:
    splits = [
        (str(j.get("cluster") or c.cluster), ev)
        for c in g.clusters
        for j in c.judgements
        for ev in [j.get("evidence") or {}]
        if isinstance(ev.get("counts"), Mapping) and isinstance(ev.get("expected"), Mapping)
        and _number(ev.get("n")) and _number(ev.get("p_value")) is not None
    ]
    if not splits:
        return None
    fig = _figure(4.2 * len(splits), 3.2)
    axes = fig.subplots(1, len(splits), squeeze=False)[0]
    for ax, (cluster, ev) in zip(axes, splits, strict=True):
        names = list(ev["expected"])
        n = float(ev["n"])
        observed = [float(ev["counts"].get(name, 0)) for name in names]
        expected = [float(ev["expected"][name]) * n for name in names]
        x = range(len(names))
        ax.bar([i - 0.2 for i in x], observed, width=0.4, label="observed", color="#0969da")
        ax.bar([i + 0.2 for i in x], expected, width=0.4, label="expected", color="#d0d7de",
               edgecolor="#57606a")
        ax.set_xticks(list(x), names)
        ax.set_ylabel("requests")
        alpha = _number(ev.get("alpha"))
        ax.set_title(f"{cluster}: n={n:g}, p={float(ev['p_value']):.3g}"
                     + (f" (alpha {alpha:g})" if alpha is not None else ""), fontsize=10)
        ax.legend(fontsize=8)
    title = f"{g.id}: observed vs expected split"
    fig.suptitle(title)
    return Plot(title, f"{title} in {', '.join(c for c, _ in splits)}", _png(fig))


def _latency(g: GuaranteeResult) -> Plot | None:
    judged = [
        (str(j.get("reason", "")).split(":", 1)[0] or c.cluster, ev)
        for c in g.clusters
        for j in c.judgements
        for ev in [j.get("evidence") or {}]
        if all(_number(ev.get(k)) is not None
               for k in ("share_low", "share_high", "required_share", "threshold_ms"))
    ]
    if not judged:
        return None
    fig = _figure(10, 1.4 + 0.6 * len(judged))
    share_ax, ms_ax = fig.subplots(1, 2)
    names = [name for name, _ in judged]
    rows = range(len(judged))
    low = [float(ev["share_low"]) * 100 for _, ev in judged]
    high = [float(ev["share_high"]) * 100 for _, ev in judged]
    share_ax.barh(rows, low, color="#0969da", label="at or under the bound")
    share_ax.barh(rows, [h - lo for h, lo in zip(high, low, strict=True)], left=low,
                  color="#0969da", alpha=0.35, label="bound between buckets")
    required = float(judged[0][1]["required_share"]) * 100
    share_ax.axvline(required, color="#9a6700", linestyle="--", label=f"needed {required:g}%")
    share_ax.set_yticks(list(rows), names)
    share_ax.set_xlim(0, 100)
    share_ax.set_xlabel(f"% of requests <= {float(judged[0][1]['threshold_ms']):g} ms")
    share_ax.legend(fontsize=8, loc="lower right")
    interpolated = [_number(ev.get("interpolated_ms")) for _, ev in judged]
    ms_ax.barh(rows, [v if v is not None else 0.0 for v in interpolated], color="#57606a")
    for row, value in zip(rows, interpolated, strict=True):
        if value is None:
            ms_ax.text(0, row, " no estimate", va="center", fontsize=8)
    quantile = _number(judged[0][1].get("quantile"))
    label = f"p{quantile * 100:g}" if quantile is not None else "quantile"
    ms_ax.axvline(float(judged[0][1]["threshold_ms"]), color="#9a6700", linestyle="--",
                  label=f"bound {float(judged[0][1]['threshold_ms']):g} ms")
    ms_ax.set_yticks(list(rows), [""] * len(judged))
    ms_ax.set_xlabel(f"interpolated {label} (ms), shown beside the verdict")
    ms_ax.legend(fontsize=8, loc="lower right")
    window = _number(judged[0][1].get("window_s"))
    title = f"{g.id}: {label} per path" + (f" over {window:g}s" if window else "")
    fig.suptitle(title)
    return Plot(title, f"{title}: {', '.join(names)}", _png(fig))


def _timeline(g: GuaranteeResult, windows: Sequence[FaultWindow]) -> Plot | None:
    if g.drill is None:
        return None
    events = [(e, _when(e.at)) for e in g.drill.events]
    dated = [(e, t) for e, t in events if t is not None]
    if not dated:
        return None
    rows = list(dict.fromkeys(e.cluster or "mesh" for e, _ in dated))
    fig = _figure(9, 1.2 + 0.9 * len(rows))
    ax = fig.subplots()
    right = max(t for _, t in dated)
    for w in windows:
        # Each cluster's fault on its own row.
        row = rows.index(w.cluster or "mesh") if (w.cluster or "mesh") in rows else None
        if row is None:
            continue
        start, end = _x(w.start), _x(w.end or right)
        ax.broken_barh([(start, end - start)], (row - 0.3, 0.6), facecolors=_SHADE,
                       alpha=0.15 if w.end else 0.3)
        if w.end is None:
            ax.annotate("no rollback recorded", (end, row - 0.3), fontsize=8, ha="right",
                        color=_SHADE)
    for i, (event, when) in enumerate(dated):
        y = rows.index(event.cluster or "mesh")
        ax.plot([_x(when)], [y], marker="o", color="#1f2328")
        ax.annotate(event.phase, (_x(when), y), xytext=(0, 8 + 10 * (i % 2)),
                    textcoords="offset points", ha="center", fontsize=8)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_ylim(-0.7, len(rows) - 0.2)
    _time_axis(ax)
    ax.set_xlabel("time (UTC)")
    ax.grid(axis="x", alpha=0.3)
    title = f"{g.id}: drill timeline"
    ax.set_title(title)
    return Plot(title, f"{title}, {len(dated)} events", _png(fig))


def _client_latency(g: GuaranteeResult) -> Plot | None:
    loads = [lo for lo in g.load if lo.percentiles_ms]
    if not loads:
        return None
    fig = _figure(7, 3)
    ax = fig.subplots()
    quantiles = sorted({q for lo in loads for q in lo.percentiles_ms}, key=float)
    width = 0.8 / len(loads)
    for i, lo in enumerate(loads):
        ax.bar([j + i * width for j in range(len(quantiles))],
               [lo.percentiles_ms.get(q, float("nan")) for q in quantiles], width=width,
               label=f"{lo.cluster or 'mesh'} ({lo.source}, {lo.requests} requests)")
    ax.set_xticks([j + width * (len(loads) - 1) / 2 for j in range(len(quantiles))],
                  [f"p{float(q) * 100:g}" for q in quantiles])
    if "max_ms" in g.thresholds.values:
        ax.axhline(g.thresholds.values["max_ms"], color="#9a6700", linestyle="--",
                   label=f"threshold {g.thresholds.values['max_ms']:g} ms")
    ax.set_ylabel("ms")
    ax.legend(fontsize=8)
    title = f"{g.id}: client-side latency percentiles"
    ax.set_title(title)
    return Plot(title, f"{title} of {len(loads)} load run(s)", _png(fig))


def guarantee_plots(g: GuaranteeResult) -> list[Plot]:
    """The plots of one guarantee, for the data it has; none when it has nothing to plot."""
    plots: list[Plot] = []
    series, windows = series_of(g), fault_windows(g)
    if series or windows:
        plots.append(_traffic(f"{g.id}: latency and success rate", series, windows, _limits(g)))
    for plot in (_latency(g), _split(g), _timeline(g, windows), _client_latency(g)):
        if plot is not None:
            plots.append(plot)
    return plots


def run_plots(report: Report) -> list[Plot]:
    """The run's overview: every recorded series together, every fault window shaded."""
    series = [s for g in report.guarantees for s in _labelled(g.id, series_of(g))]
    windows = [w for g in report.guarantees for w in fault_windows(g)]
    if not series:
        return []
    return [_traffic("latency and success rate over the run", series, windows, {})]


def _labelled(prefix: str, series: Iterable[Series]) -> list[Series]:
    return [Series(f"{prefix} {s.label}", s.unit, s.cluster, s.points) for s in series]
