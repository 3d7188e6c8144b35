"""The monitoring report: one standalone HTML page, readable offline.

Styles are inline and every chart is inline SVG drawn here (grouped bars of
reference and current fractions): nothing is fetched when the page opens, so it
can be mailed, archived as an MLflow artifact, or opened on an air-gapped host.
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime

from runway.core.columns.drift import OTHER, UNSEEN
from runway.monitoring.judge import Distribution, FeatureVerdict, Verdict, format_p

_CSS = """
body{font:14px/1.45 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;color:#1f2328;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.muted{color:#656d76}.badge{display:inline-block;padding:3px 10px;border-radius:12px;font-weight:600;color:#fff}
.ok{background:#1a7f37}.bad{background:#cf222e}.warn{background:#9a6700}
table{border-collapse:collapse;width:100%;margin:8px 0}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
th{background:#f6f8fa;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.drift td{background:#fff1f0}.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:12px}
.card{border:1px solid #d0d7de;border-radius:8px;padding:10px}.card.drift{border-color:#cf222e;box-shadow:0 0 0 1px #cf222e inset}
.card h3{font-size:14px;margin:0 0 4px}.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
ul.breaches li{color:#cf222e}
"""
_REF, _CUR, _CUR_BAD = "#8c959f", "#0969da", "#cf222e"
MAX_LEVELS = 24  # levels a chart shows; a category with more shows the levels that moved most
_FONT = 11  # px, axis and bin labels
_MAX_LABEL = 24  # characters of a bin label before it is cut (the full one is its tooltip)


def render(verdict: Verdict, *, outcome: str, run_url: str = "") -> str:
    """The whole report for one judged window."""
    badge = {
        "healthy": ("ok", "healthy"),
        "crossed": ("bad", "threshold crossed"),
        "not_judged": ("warn", "not judged"),
    }[outcome]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>runway monitor: {_e(verdict.model)} v{_e(verdict.version)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(verdict.model)} v{_e(verdict.version)} "
        f"<span class='badge {badge[0]}'>{badge[1]}</span></h1>",
        f"<div class='muted'>window {_e(verdict.window.label)} · {verdict.rows_scored:,} rows scored · "
        f"{verdict.rows_rejected:,} rejected · statistic: {_e(verdict.statistic)} · generated "
        f"{datetime.now(UTC).isoformat(timespec='seconds')}"
        + (f" · <a href='{_e(run_url)}'>monitoring run</a>" if run_url else "")
        + "</div>",
        _summary(verdict),
        _feature_table(verdict),
        _outputs(verdict),
        _quality(verdict),
        _performance(verdict),
        "<h2>Feature distributions</h2><div class='legend muted'>"
        f"<span style='background:{_REF}'></span>training (reference)"
        f"<span style='background:{_CUR}'></span>this window"
        f"<span style='background:{_CUR_BAD}'></span>this window, drifted</div><div class='cards'>",
        *(_card(f) for f in _ordered(verdict.features)),
        "</div></body></html>",
    ]
    return "\n".join(parts)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _summary(verdict: Verdict) -> str:
    items = (
        "".join(f"<li>{_e(b)}</li>" for b in verdict.breaches) or "<li>no threshold crossed</li>"
    )
    notes = "".join(f"<li class='muted'>{_e(n)}</li>" for n in verdict.notes)
    return (
        "<h2>Summary</h2>"
        f"<p>{_e(verdict.share_text)}; rejected rows {verdict.rejected_rate:.1%}.</p>"
        f"<p class='muted'>Rules: {_e(verdict.rules)}.</p>"
        f"<ul class='breaches'>{items}</ul>" + (f"<ul>{notes}</ul>" if notes else "")
    )


def _ordered(features: list[FeatureVerdict]) -> list[FeatureVerdict]:
    return sorted(
        features,
        key=lambda f: (not f.drifted, -(f.distribution.psi if f.distribution else 0.0), f.name),
    )


def _feature_table(verdict: Verdict) -> str:
    rows = []
    for f in _ordered(verdict.features):
        d = f.distribution
        verdict_text = "DRIFT" if f.drifted else ("-" if d is None else "ok")
        name = f"{f.name} ({f.part})" if f.part else f.name
        rows.append(
            f"<tr class='{'drift' if f.drifted else ''}'><td>{_e(name)}</td><td>{f.kind}</td>"
            f"<td class='num'>{_num(d.psi if d else None, 3)}</td>"
            f"<td class='num'>{format_p(d.p_value if d else None)}</td><td>{verdict_text}</td>"
            f"<td class='num'>{f.missing_rate:.1%} ({f.reference_missing_rate:.1%})</td>"
            f"<td class='num'>{f.out_of_range_rate:.1%}</td><td class='num'>{f.unseen_rate:.1%}</td>"
            f"<td>{_e('; '.join([*f.quality, *([f.note] if f.note else [])])) or '-'}</td></tr>"
        )
    return (
        "<h2>Input drift, per feature</h2><table><tr><th>feature</th><th>kind</th><th>PSI</th>"
        "<th>chi-square p</th><th>drift</th><th>missing (training)</th><th>out of range</th>"
        "<th>unseen</th><th>quality</th></tr>" + "".join(rows) + "</table>"
    )


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _outputs(verdict: Verdict) -> str:
    cards = []
    if verdict.prediction is not None:
        cards.append(_chart_card("predictions", verdict.prediction, verdict.prediction.drifted))
    for label, scores in verdict.scores.items():
        cards.append(_chart_card(f"probability of class {label}", scores, scores.drifted))
    if not cards:
        return "<h2>Prediction drift</h2><p class='muted'>No prediction reference for this version.</p>"
    return "<h2>Prediction drift</h2><div class='cards'>" + "".join(cards) + "</div>"


def _quality(verdict: Verdict) -> str:
    rows = "".join(
        f"<tr><td>{_e(reason)}</td><td class='num'>{n:,}</td></tr>"
        for reason, n in list(verdict.reasons.items())[:20]
    )
    table = (
        f"<table><tr><th>rejection reason</th><th>rows</th></tr>{rows}</table>"
        if rows
        else "<p class='muted'>No row was rejected by the data contract.</p>"
    )
    return f"<h2>Data quality</h2><p>Rejected rows: {verdict.rejected_rate:.1%}.</p>{table}"


def _performance(verdict: Verdict) -> str:
    p = verdict.performance
    if p is None:
        return "<h2>Live metric</h2><p class='muted'>No labels given (--labels).</p>"
    return (
        "<h2>Live metric</h2><table><tr><th>metric</th><th>live</th><th>holdout</th>"
        f"<th>{p.limit}</th>"
        f"<th>labelled rows</th><th>verdict</th></tr><tr><td>{_e(p.metric)}</td>"
        f"<td class='num'>{_num(p.live, 4)}</td><td class='num'>{_num(p.holdout, 4)}</td>"
        f"<td class='num'>{_num(p.floor, 4)}</td><td class='num'>{p.joined:,}</td>"
        f"<td>{_e(p.state)}</td></tr></table>"
        + (f"<p class='muted'>{_e(p.note)}</p>" if p.note else "")
    )


def _card(feature: FeatureVerdict) -> str:
    if feature.distribution is None:
        why = feature.note or "no reference bins"
        return f"<div class='card'><h3>{_e(feature.name)}</h3><p class='muted'>{_e(why)}</p></div>"
    title = f"{feature.name} ({feature.part})" if feature.part else feature.name
    return _chart_card(title, feature.distribution, feature.drifted)


def _chart_card(title: str, d: Distribution, drifted: bool) -> str:
    stats = f"PSI {d.psi:.3f} · chi-square p {format_p(d.p_value)}" + (
        " · DRIFT" if drifted else ""
    )
    labels, reference, current, caption = chart_bins(d)
    return (
        f"<div class='card{' drift' if drifted else ''}'><h3>{_e(title)}</h3>"
        f"<div class='muted'>{stats}</div>{bars(labels, reference, current, drifted)}"
        + (f"<div class='muted'>{_e(caption)}</div>" if caption else "")
        + "</div>"
    )


def chart_bins(d: Distribution) -> tuple[list[str], list[float], list[float], str]:
    """The bins a chart shows, and a caption when they are not all of them.

    A category with more than :data:`MAX_LEVELS` levels shows the ones that
    moved most (largest change in share first), the rest summed as ``(other)``,
    and ``(unseen)`` always: the level that drifted is on the page whatever its
    place in training's order. Fewer levels (numeric bins, a datetime's hours)
    keep their own order.
    """
    bins = list(zip(d.labels, d.reference, d.current, strict=True))
    levels = [b for b in bins if b[0] not in (OTHER, UNSEEN)]
    if len(levels) <= MAX_LEVELS:
        return d.labels, d.reference, d.current, ""
    levels.sort(key=lambda b: -abs(b[2] - b[1]))
    kept, rest = levels[:MAX_LEVELS], levels[MAX_LEVELS:]
    other = [b for b in bins if b[0] == OTHER] + rest
    unseen = [b for b in bins if b[0] == UNSEEN]
    shown = [
        *kept,
        (OTHER, sum(b[1] for b in other), sum(b[2] for b in other)),
        *unseen,
    ]
    caption = (
        f"the {len(kept)} of {len(levels)} levels that moved most, largest first; "
        f"the other {len(rest)} as {OTHER}"
    )
    return [b[0] for b in shown], [b[1] for b in shown], [b[2] for b in shown], caption


def _geometry(texts: list[str], plot_w: int) -> tuple[int, int, float]:
    """Left and bottom margins that hold the bin labels whole, and the labels' angle.

    Labels turn steeper as bins get narrower (40 degrees for a few, upright for
    many) so neighbours never overlap at 11 px; a label of n characters then
    reaches about n x 6 x cos(angle) px left of its bin and n x 6 x sin(angle) px
    below the axis, and the first bins' labels set the left margin.
    """
    slot = plot_w / max(len(texts), 1)
    angle = math.degrees(math.asin(min(1.0, max(math.sin(math.radians(40)), 13 / slot))))
    per_char = _FONT * 0.56
    across, down = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    reach = [len(t) * per_char * across - (i + 0.5) * slot for i, t in enumerate(texts)]
    left = int(max(44.0, *reach, 0.0) + 4)
    bottom = int(20 + max((len(t) for t in texts), default=1) * per_char * down)
    return left, bottom, angle


def bars(labels: list[str], reference: list[float], current: list[float], drifted: bool) -> str:
    """Grouped bars (reference, current) per bin as inline SVG, bin labels under them."""
    shown = len(labels)
    texts = [lb if len(lb) <= _MAX_LABEL else lb[: _MAX_LABEL - 1] + "…" for lb in labels[:shown]]
    top, plot_w, plot_h = 8, 310, 104
    left, bottom, angle = _geometry(texts, plot_w)
    width, height = left + plot_w + 6, top + plot_h + bottom
    peak = max([*reference[:shown], *current[:shown], 1e-9])
    slot = plot_w / max(shown, 1)
    bar = max(slot * 0.38, 1.0)
    out = [f"<svg width='{width}' height='{height}' viewBox='0 0 {width} {height}' role='img'>"]
    for tick in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - tick)
        out.append(
            f"<line x1='{left}' x2='{width - 6}' y1='{y:.1f}' y2='{y:.1f}' stroke='#eaeef2'/>"
            f"<text x='{left - 4}' y='{y + 4:.1f}' font-size='{_FONT}' text-anchor='end' "
            "fill='#656d76'>"
            f"{peak * tick:.0%}</text>"
        )
    colour = _CUR_BAD if drifted else _CUR
    for i in range(shown):
        x = left + i * slot + slot * 0.1
        for offset, value, fill in ((0.0, reference[i], _REF), (bar, current[i], colour)):
            h = plot_h * value / peak
            out.append(
                f"<rect x='{x + offset:.1f}' y='{top + plot_h - h:.1f}' width='{bar:.1f}' "
                f"height='{h:.1f}' fill='{fill}'><title>{_e(labels[i])}: {value:.1%}</title></rect>"
            )
        cx, cy = x + bar, top + plot_h + 8
        out.append(
            f"<text x='{cx:.1f}' y='{cy:.1f}' font-size='{_FONT}' fill='#656d76' "
            f"text-anchor='end' transform='rotate(-{angle:.0f} {cx:.1f} {cy:.1f})'>"
            f"{_e(texts[i])}</text>"
        )
    out.append("</svg>")
    return "".join(out)
