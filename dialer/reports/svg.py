"""Small inline-SVG charts for the printable report (no JavaScript, no network).

Three shapes: horizontal bars (reasons, funnels), a Pareto (bars + cumulative line on a
secondary 0-100 % axis, with the 80 % reference and the vital few highlighted) and a line
chart (daily abandon rate per campaign against the cap).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

__all__ = ["hbar_chart", "line_chart", "pareto_chart"]

PALETTE = ("#1f3864", "#2e75b6", "#c55a11", "#548235", "#7030a0", "#bf9000")
FONT = "font-family='DejaVu Sans, Arial, sans-serif'"


def _fmt(value: float) -> str:
    text = f"{value:,.2f}".rstrip("0").rstrip(".")
    return text.replace(",", "\u2009").replace(".", ",")


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000):
        if value <= step * 5:
            return float(step * 5)
    return float(value)


def _wrap(text: str, width: int) -> list[str]:
    words = text.split()
    lines: list[str] = []
    current = ""
    for w in words:
        if current and len(current) + 1 + len(w) > width:
            lines.append(current)
            current = w
        else:
            current = f"{current} {w}".strip()
    if current:
        lines.append(current)
    return lines[:3] or [""]


def _empty(title: str, width: int, height: int = 60) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"role='img' aria-label='{escape(title)}' {FONT}>"
        f"<text x='0' y='18' font-size='14' font-weight='bold'>{escape(title)}</text>"
        f"<text x='0' y='44' font-size='12' fill='#666'>Sin datos en el periodo</text></svg>"
    )


def hbar_chart(
    title: str, items: Sequence[tuple[str, float]], *, width: int = 560, unit: str = ""
) -> str:
    """Horizontal bars, largest first as given."""
    if not items or not any(v for _, v in items):
        return _empty(title, width)
    label_w = 210
    bar_h, gap, top = 20, 8, 30
    height = top + len(items) * (bar_h + gap) + 10
    vmax = max(v for _, v in items) or 1
    span = width - label_w - 70
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label='{escape(title)}' {FONT}>",
        f"<text x='0' y='16' font-size='14' font-weight='bold'>{escape(title)}</text>",
    ]
    for i, (label, value) in enumerate(items):
        y = top + i * (bar_h + gap)
        w = max(1.0, span * value / vmax) if value else 0
        short = label if len(label) <= 32 else label[:31] + "…"
        parts.append(
            f"<text x='{label_w - 6}' y='{y + 14}' font-size='11' text-anchor='end'>"
            f"{escape(short)}</text>"
            f"<rect x='{label_w}' y='{y}' width='{w:.1f}' height='{bar_h}' "
            f"fill='{PALETTE[1]}'/>"
            f"<text x='{label_w + w + 4:.1f}' y='{y + 14}' font-size='11'>"
            f"{_fmt(value)}{escape(unit)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def pareto_chart(
    title: str,
    rows: Sequence[tuple[str, int, float, bool]],
    *,
    width: int = 720,
    height: int = 330,
    threshold_pct: float = 80.0,
) -> str:
    """rows: (label, count, cumulative %, vital). Bars on the left axis, the cumulative line
    on the right axis (0-100 %), a dashed line at ``threshold_pct``."""
    if not rows:
        return _empty(title, width)
    left, right, top, bottom = 50, 50, 34, 80
    plot_w = width - left - right
    plot_h = height - top - bottom
    cmax = _nice_max(max(r[1] for r in rows))
    slot = plot_w / len(rows)
    bar_w = slot * 0.62
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label='{escape(title)}' {FONT}>",
        f"<text x='0' y='16' font-size='14' font-weight='bold'>{escape(title)}</text>",
    ]
    y0 = top + plot_h
    for k in range(6):  # left axis ticks (counts) and right axis ticks (percent)
        frac = k / 5
        y = y0 - plot_h * frac
        parts.append(
            f"<line x1='{left}' y1='{y:.1f}' x2='{left + plot_w}' y2='{y:.1f}' "
            f"stroke='#e6e6e6'/>"
            f"<text x='{left - 6}' y='{y + 4:.1f}' font-size='10' text-anchor='end'>"
            f"{_fmt(cmax * frac)}</text>"
            f"<text x='{left + plot_w + 6}' y='{y + 4:.1f}' font-size='10'>"
            f"{int(100 * frac)} %</text>"
        )
    ty = y0 - plot_h * threshold_pct / 100
    parts.append(
        f"<line x1='{left}' y1='{ty:.1f}' x2='{left + plot_w}' y2='{ty:.1f}' "
        f"stroke='{PALETTE[2]}' stroke-dasharray='5,4'/>"
        f"<text x='{left + plot_w - 4}' y='{ty - 4:.1f}' font-size='10' text-anchor='end' "
        f"fill='{PALETTE[2]}'>{_fmt(threshold_pct)} %</text>"
    )
    points = []
    for i, (label, count, cum, vital) in enumerate(rows):
        x = left + i * slot + (slot - bar_w) / 2
        h = plot_h * count / cmax
        color = PALETTE[0] if vital else "#9dc3e6"
        parts.append(
            f"<rect x='{x:.1f}' y='{y0 - h:.1f}' width='{bar_w:.1f}' height='{h:.1f}' "
            f"fill='{color}'/>"
            f"<text x='{x + bar_w / 2:.1f}' y='{y0 - h - 4:.1f}' font-size='10' "
            f"text-anchor='middle'>{count}</text>"
        )
        for j, line in enumerate(_wrap(label, max(8, int(slot / 6.2)))):
            parts.append(
                f"<text x='{x + bar_w / 2:.1f}' y='{y0 + 14 + 12 * j}' font-size='10' "
                f"text-anchor='middle'>{escape(line)}</text>"
            )
        cx = x + bar_w / 2
        cy = y0 - plot_h * cum / 100
        points.append((cx, cy, cum))
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in points)
    parts.append(f"<polyline points='{path}' fill='none' stroke='{PALETTE[2]}' stroke-width='2'/>")
    for x, y, cum in points:
        parts.append(
            f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3.5' fill='{PALETTE[2]}'/>"
            f"<text x='{x + 5:.1f}' y='{y - 6:.1f}' font-size='9' fill='{PALETTE[2]}'>"
            f"{_fmt(cum)} %</text>"
        )
    ly = height - 12
    parts.append(
        f"<rect x='{left}' y='{ly - 9}' width='10' height='10' fill='{PALETTE[0]}'/>"
        f"<text x='{left + 14}' y='{ly}' font-size='10'>Vitales</text>"
        f"<rect x='{left + 80}' y='{ly - 9}' width='10' height='10' fill='#9dc3e6'/>"
        f"<text x='{left + 94}' y='{ly}' font-size='10'>Resto</text>"
        f"<line x1='{left + 150}' y1='{ly - 4}' x2='{left + 170}' y2='{ly - 4}' "
        f"stroke='{PALETTE[2]}' stroke-width='2'/>"
        f"<text x='{left + 175}' y='{ly}' font-size='10'>% acumulado</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    cap: float | None = None,
    width: int = 720,
    height: int = 280,
    unit: str = " %",
) -> str:
    """One line per series over ``labels`` (gaps where a value is None), plus a dashed cap."""
    values = [v for _, vs in series for v in vs if v is not None]
    if not labels or not values:
        return _empty(title, width)
    left, right, top, bottom = 46, 16, 34, 56
    plot_w = width - left - right
    plot_h = height - top - bottom
    vmax = _nice_max(max([*values, cap or 0]))
    step = plot_w / max(1, len(labels) - 1)
    y0 = top + plot_h
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label='{escape(title)}' {FONT}>",
        f"<text x='0' y='16' font-size='14' font-weight='bold'>{escape(title)}</text>",
    ]
    for k in range(6):
        y = y0 - plot_h * k / 5
        parts.append(
            f"<line x1='{left}' y1='{y:.1f}' x2='{left + plot_w}' y2='{y:.1f}' stroke='#e6e6e6'/>"
            f"<text x='{left - 6}' y='{y + 4:.1f}' font-size='10' text-anchor='end'>"
            f"{_fmt(vmax * k / 5)}{escape(unit)}</text>"
        )
    every = max(1, len(labels) // 16)
    for i, label in enumerate(labels):
        if i % every == 0:
            parts.append(
                f"<text x='{left + i * step:.1f}' y='{y0 + 14}' font-size='10' "
                f"text-anchor='middle'>{escape(label)}</text>"
            )
    if cap is not None:
        cy = y0 - plot_h * cap / vmax
        parts.append(
            f"<line x1='{left}' y1='{cy:.1f}' x2='{left + plot_w}' y2='{cy:.1f}' "
            f"stroke='#c00000' stroke-dasharray='6,4' stroke-width='1.5'/>"
        )
    for n, (_, vs) in enumerate(series):
        color = PALETTE[n % len(PALETTE)]
        segment: list[str] = []
        segments: list[list[str]] = []
        for i, v in enumerate(vs):
            if v is None:
                if segment:
                    segments.append(segment)
                segment = []
                continue
            x, y = left + i * step, y0 - plot_h * min(v, vmax) / vmax
            segment.append(f"{x:.1f},{y:.1f}")
            parts.append(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='2.5' fill='{color}'/>")
        if segment:
            segments.append(segment)
        for seg in segments:
            parts.append(
                f"<polyline points='{' '.join(seg)}' fill='none' stroke='{color}' "
                f"stroke-width='2'/>"
            )
    lx, ly = left, height - 14
    for n, (name, _) in enumerate(series):
        color = PALETTE[n % len(PALETTE)]
        parts.append(
            f"<rect x='{lx}' y='{ly - 9}' width='10' height='10' fill='{color}'/>"
            f"<text x='{lx + 14}' y='{ly}' font-size='10'>{escape(name)}</text>"
        )
        lx += 24 + 6 * len(name)
    if cap is not None:
        parts.append(
            f"<line x1='{lx}' y1='{ly - 4}' x2='{lx + 20}' y2='{ly - 4}' stroke='#c00000' "
            f"stroke-dasharray='6,4'/><text x='{lx + 25}' y='{ly}' font-size='10'>"
            f"Tope {_fmt(cap)} %</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
