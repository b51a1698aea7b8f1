"""The parameter tables of docs/ros.md, made from the parameter spec (``ros.param_spec``).

    python -m face3d_ros.tools.param_table            # print the tables
    python -m face3d_ros.tools.param_table --write docs/ros.md
    python -m face3d_ros.tools.param_table --check docs/ros.md   # exit 1 when they differ

Each node's table sits in the document between ``<!-- params:NODE:begin -->`` and
``<!-- params:NODE:end -->`` (NODE: ``face3d`` or ``face3d_people``). The spec is the one place
of names, defaults, ranges, choices, whether a parameter may change while the node runs and
its description; the table is written from it, never by hand (a test runs ``--check``).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v == "":
        return '""'
    return str(v)


def table(specs) -> str:
    """The markdown table of one node's parameter specs."""
    rows = ["| name | default | range / choices | live | description |",
            "|---|---|---|---|---|"]
    for s in specs:
        if s.limits is not None:
            rng = f"[{s.limits[0]}, {s.limits[1]}]"
        elif s.choices is not None:
            rng = ", ".join(s.choices)
        else:
            rng = ""
        rows.append(f"| `{s.name}` | `{_value(s.default)}` | {rng} | "
                    f"{'no' if s.read_only else 'yes'} | {s.description} |")
    return "\n".join(rows) + "\n"


def tables() -> Dict[str, str]:
    """Node name -> its table (the people node's without the names it shares with the
    perception node, which the first table lists)."""
    from face3d_ros.ros.param_spec import PARAMETERS, PEOPLE_PARAMETERS, SHARED_NAMES

    own = [s for s in PEOPLE_PARAMETERS if s.name not in SHARED_NAMES]  # shared: first table
    return {"face3d": table(PARAMETERS), "face3d_people": table(own)}


def _block(node: str) -> "re.Pattern[str]":
    return re.compile(rf"(<!-- params:{node}:begin -->\n)(.*?)(<!-- params:{node}:end -->)",
                      re.S)


def differences(text: str) -> List[str]:
    """What differs between the tables in ``text`` and the spec; empty when they agree."""
    problems = []
    for node, want in tables().items():
        m = _block(node).search(text)
        if m is None:
            problems.append(f"no <!-- params:{node}:begin/end --> block")
        elif m.group(2) != want:
            problems.append(f"the {node} table differs from the spec (run "
                            "python -m face3d_ros.tools.param_table --write docs/ros.md)")
    return problems


def rewrite(text: str) -> str:
    """``text`` with every table block replaced by the spec's table."""
    for node, want in tables().items():
        text = _block(node).sub(lambda m: m.group(1) + want + m.group(3), text)
    return text


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print, write or check the tables; 1 when ``--check`` finds a difference."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--check", metavar="DOC", help="compare the tables in DOC with the spec")
    g.add_argument("--write", metavar="DOC", help="replace the tables in DOC")
    args = p.parse_args(argv)
    if args.check or args.write:
        path = Path(args.check or args.write)
        text = path.read_text()
        if args.check:
            problems = differences(text)
            for problem in problems:
                print(f"{path}: {problem}", file=sys.stderr)
            return 1 if problems else 0
        path.write_text(rewrite(text))
        return 0
    for node, text in tables().items():
        print(f"## {node}\n\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
