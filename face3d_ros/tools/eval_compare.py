"""face3d-eval ``--compare RUN_A RUN_B``: two output folders side by side; exit 1 when they
differ beyond the tolerances."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from face3d_ros.core.io import metrics as M
from face3d_ros.tools.eval_input import EXIT_DIFFERENT, EXIT_OK, EvalError

# -- compare --------------------------------------------------------------------------------


def _flat(d, prefix: str = "") -> Dict[str, object]:
    out: Dict[str, object] = {}
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _load_run(path: str) -> Tuple[dict, List[dict]]:
    p = Path(path)
    try:
        metrics = json.loads((p / "metrics.json").read_text())
        frames = json.loads((p / "frames.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise EvalError(f"{p}: not a face3d-eval output folder (metrics.json, frames.json): "
                        f"{exc}") from None
    return metrics, frames


def compare(run_a: str, run_b: str, tol_deg: float = 1.0, latency_tol: Optional[float] = None,
            out=sys.stdout) -> int:
    """Print metrics side by side and per-frame differences; 1 when something differs."""
    ma, fa = _load_run(run_a)
    mb, fb = _load_run(run_b)
    flat_a, flat_b = _flat(ma), _flat(mb)
    flagged: List[str] = []
    print(f"{'metric':<44} {'A':>12} {'B':>12} {'change':>10}", file=out)
    for key in sorted(set(flat_a) | set(flat_b)):
        a, b = flat_a.get(key), flat_b.get(key)
        if key in ("bag", "schema", "tool") or key.startswith("params") or key == "wall_s":
            continue
        num = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
        if num:
            change = b - a
            rel = change / abs(a) if a else (0.0 if b == a else float("inf"))
            if key.startswith(("latency_ms", "throughput")):
                bad = latency_tol is not None and abs(rel) > latency_tol
            elif key.startswith(("jitter", "truth")) and isinstance(a, float):
                bad = abs(change) > tol_deg * 0.1 if "landmarks" in key else abs(change) > tol_deg
            else:
                bad = a != b
            text = f"{change:+.3g}"
        else:
            bad = a != b and key in ("bag_damage", "mode")  # others describe the run
            text = "" if a == b else "differs"
        mark = "  <-- differs" if bad else ""
        if bad:
            flagged.append(key)
        print(f"{key:<44} {_short(a):>12} {_short(b):>12} {text:>10}{mark}", file=out)
    # per frame
    by_a = {f["stamp_ns"]: f for f in fa}
    by_b = {f["stamp_ns"]: f for f in fb}
    count_diff, pose_diff = [], []
    for stamp in sorted(set(by_a) | set(by_b)):
        a, b = by_a.get(stamp), by_b.get(stamp)
        if a is None or b is None:
            count_diff.append((stamp, "missing in " + ("A" if a is None else "B")))
            continue
        if len(a["faces"]) != len(b["faces"]):
            count_diff.append((a["index"], f"{len(a['faces'])} vs {len(b['faces'])} faces"))
            continue
        for fa_, fb_ in zip(_by_box(a["faces"]), _by_box(b["faces"])):
            d = max(abs(float(M.wrap_deg(fa_[k] - fb_[k]))) for k in M.ANGLES)
            if d > tol_deg:
                pose_diff.append((a["index"], d))
    print(f"\nper frame: {len(count_diff)} frames with a different face count, "
          f"{len(pose_diff)} with an angle differing by more than {tol_deg:g} deg", file=out)
    for idx, what in count_diff[:20]:
        print(f"  frame {idx}: {what}", file=out)
    for idx, d in pose_diff[:20]:
        print(f"  frame {idx}: angles differ by up to {d:.2f} deg", file=out)
    n = len(flagged) + len(count_diff) + len(pose_diff)
    if n:
        print(f"\nDIFFERENT: {len(flagged)} metrics flagged"
              + (f" ({', '.join(flagged[:8])}{', ...' if len(flagged) > 8 else ''})"
                 if flagged else "")
              + f", {len(count_diff) + len(pose_diff)} frames differ", file=out)
        return EXIT_DIFFERENT
    print("\nSAME: no differences beyond the tolerances", file=out)
    return EXIT_OK


def _by_box(faces: List[dict]) -> List[dict]:
    return sorted(faces, key=lambda f: (f["box"][0], f["box"][1]))


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    s = "-" if v is None else str(v)
    return s if len(s) <= 12 else s[:11] + "~"
