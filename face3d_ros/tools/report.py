"""report.html of a face3d-eval run: plots (matplotlib, embedded as base64 PNG) and tables.

Plots: latency histogram and timeline, faces per frame, head yaw/pitch/roll and gaze yaw/pitch
timelines per face id. Input: the run's ``metrics.json`` and ``frames.json`` contents (see
docs/eval.md for both schemas).
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np


def _figure(width: float = 9.0, height: float = 3.0, rows: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, 1, figsize=(width, height * rows), squeeze=False,
                             sharex=rows > 1)
    return fig, list(axes[:, 0])


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _latency_key(frames: Sequence[dict]) -> Optional[str]:
    keys = [k for f in frames for k in f.get("timings_ms", {})]
    for k in ("end_to_end", "total"):
        if k in keys:
            return k
    return keys[0] if keys else None


def plot_latency(frames: Sequence[dict]) -> Optional[bytes]:
    """PNG: histogram and timeline of per-frame latency (end-to-end live, total offline)."""
    key = _latency_key(frames)
    if key is None:
        return None
    idx = [f["index"] for f in frames if key in f.get("timings_ms", {})]
    ms = np.array([f["timings_ms"][key] for f in frames if key in f.get("timings_ms", {})])
    fig, (ax1, ax2) = _figure(rows=2)
    ax1.hist(ms, bins=min(40, max(5, len(ms) // 2)), color="#4477aa")
    for q, style in ((50, "-"), (95, "--"), (99, ":")):
        v = float(np.percentile(ms, q))
        ax1.axvline(v, color="k", linestyle=style, label=f"p{q} {v:.1f} ms")
    ax1.set_xlabel(f"{key} latency (ms)")
    ax1.set_ylabel("frames")
    ax1.legend(loc="upper right", fontsize=8)
    ax1.tick_params(labelbottom=True)
    ax2.plot(idx, ms, ".-", color="#4477aa", markersize=3)
    ax2.set_xlabel("frame")
    ax2.set_ylabel(f"{key} (ms)")
    ax2.grid(alpha=0.3)
    return _png(fig)


def plot_faces(frames: Sequence[dict]) -> bytes:
    """PNG: faces per frame (and which frames were still or dropped)."""
    fig, (ax,) = _figure()
    idx = np.array([f["index"] for f in frames])
    n = np.array([len(f["faces"]) for f in frames])
    ax.step(idx, n, where="mid", color="#228833", label="faces")
    still = [f["index"] for f in frames if f.get("still")]
    if still:
        ax.plot(still, np.zeros(len(still)) - 0.1, "|", color="#aa3377", label="still frame")
    dropped = [f["index"] for f in frames if f.get("dropped")]
    if dropped:
        ax.plot(dropped, np.zeros(len(dropped)) - 0.2, "x", color="#ee6677", label="dropped")
    ax.set_xlabel("frame")
    ax.set_ylabel("faces")
    ax.set_ylim(-0.4, max(1, int(n.max()) if n.size else 1) + 0.5)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def _per_id(frames: Sequence[dict], keys: Sequence[str]) -> Dict[int, Dict[str, list]]:
    series: Dict[int, Dict[str, list]] = {}
    for f in frames:
        for face in f["faces"]:
            s = series.setdefault(int(face["id"]), {"index": [], **{k: [] for k in keys}})
            s["index"].append(f["index"])
            for k in keys:
                s[k].append(face[k])
    return series


def plot_angles(frames: Sequence[dict], keys: Sequence[str], title: str) -> Optional[bytes]:
    """PNG: one subplot per angle in ``keys`` (degrees), one line per face id."""
    series = _per_id(frames, keys)
    if not series:
        return None
    fig, axes = _figure(height=2.2, rows=len(keys))
    for ax, k in zip(axes, keys):
        for tid, s in sorted(series.items()):
            label = f"id {tid}" if tid >= 0 else "untracked"
            ax.plot(s["index"], s[k], ".-" if tid >= 0 else ".", markersize=4, label=label)
        ax.set_ylabel(f"{k} (deg)")
        ax.grid(alpha=0.3)
    axes[0].set_title(title)
    axes[0].legend(loc="upper right", fontsize=8, ncol=4)
    axes[-1].set_xlabel("frame")
    return _png(fig)


def plots(frames: Sequence[dict]) -> Dict[str, bytes]:
    """Name -> PNG bytes of every plot the report shows (plots without data are left out)."""
    out = {"latency": plot_latency(frames), "faces": plot_faces(frames),
           "head_pose": plot_angles(frames, ("yaw", "pitch", "roll"), "Head pose per id"),
           "gaze": plot_angles(frames, ("gaze_yaw", "gaze_pitch"), "Combined gaze per id")}
    return {k: v for k, v in out.items() if v is not None}


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    if v is None:
        return "&ndash;"
    return html.escape(str(v))


def _table(rows: List[tuple]) -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_fmt(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _flatten(d, prefix: str = "") -> List[tuple]:
    rows: List[tuple] = []
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            rows.extend(_flatten(v, name + "."))
        else:
            rows.append((name, v))
    return rows


def render(metrics: dict, frames: Sequence[dict]) -> str:
    """The report as one self-contained HTML page."""
    imgs = plots(frames)
    sections = []
    titles = {"latency": "Latency", "faces": "Faces per frame", "head_pose": "Head pose",
              "gaze": "Gaze"}
    for name, png in imgs.items():
        b64 = base64.b64encode(png).decode("ascii")
        sections.append(f"<h2>{titles[name]}</h2><img alt='{name}' "
                        f"src='data:image/png;base64,{b64}'>")
    lat = metrics.get("latency_ms", {})
    cells = ("p50", "p95", "p99", "max")
    lat_rows = "".join(f"<tr><th>{html.escape(k)}</th>"
                       + "".join(f"<td>{_fmt(v.get(q))}</td>" for q in cells) + "</tr>"
                       for k, v in lat.items())
    head = [(k, metrics.get(k)) for k in ("mode", "bag", "image_topic", "device", "frames",
                                          "faces", "share_with_face", "throughput_fps",
                                          "dropped_frames", "bag_damage")]
    damage = metrics.get("bag_damage")
    warn = (f"<p class='warn'>Partial results: {html.escape(damage)}</p>" if damage else "")
    other = {k: metrics[k] for k in ("tracking", "jitter", "truth") if metrics.get(k)}
    css = ("body{font-family:sans-serif;max-width:900px;margin:2em auto;color:#222}"
           "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;"
           "padding:3px 8px;text-align:left;font-size:90%}img{max-width:100%}"
           ".warn{background:#fee;border:1px solid #c66;padding:.5em}")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>face3d evaluation"
            f"</title><style>{css}</style></head><body><h1>face3d evaluation</h1>{warn}"
            f"{_table(head)}<h2>Latency (ms)</h2><table><tr><th>stage</th><th>p50</th>"
            f"<th>p95</th><th>p99</th><th>max</th></tr>{lat_rows}</table>"
            + "".join(sections)
            + f"<h2>Tracking, jitter, ground truth</h2>{_table(_flatten(other))}"
            + "</body></html>")


def write_report(out_dir: str | Path, metrics: Optional[dict] = None,
                 frames: Optional[Sequence[dict]] = None) -> Path:
    """Write ``out_dir/report.html`` (reads metrics.json / frames.json there when not given)."""
    out = Path(out_dir)
    if metrics is None:
        metrics = json.loads((out / "metrics.json").read_text())
    if frames is None:
        frames = json.loads((out / "frames.json").read_text())
    path = out / "report.html"
    path.write_text(render(metrics, frames))
    return path
