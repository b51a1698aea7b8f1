"""Benchmark of the converted networks: torch CPU against LiteRT CPU, and torch CUDA.

A program that prints tables, not a test. For every network and batch size it times one call
(median, or minimum, of ``repeats`` after warm-up) of

* torch on the CPU with ``torch.set_num_threads(t)``,
* Google's LiteRT runtime (``ai_edge_litert``, XNNPACK) with ``num_threads=t``, same file,
  same input (a batched interpreter when the graph can be resized, else B single calls),
* torch on CUDA when a GPU is present (synchronised around the call),

for each thread count ``t`` (1 and 2 by default), so the two CPU runtimes get the same cores.

Usage::

    python -m face3d_ros.tools.bench_models [--batch 1 2 4 8 16] [--repeats 30] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch

from face3d_ros.core.io import model_store
from face3d_ros.core.pipeline.models import INPUT_SIZES, load_face_models

NETWORKS = ("short", "full", "mesh", "iris")
_CALLS = {"short": "detect_short", "full": "detect_full", "mesh": "mesh", "iris": "iris"}


@dataclass(frozen=True)
class BenchRow:
    """One timing of one network with one runtime.

    network: key ("short", "full", "mesh", "iris"). runtime: "torch-cpu", "litert-cpu" or
    "torch-cuda". batch: images per call. threads: CPU threads (0 for CUDA). ms_per_call:
    milliseconds per call (median or min). note: how it was timed when not as one batched call.
    """

    network: str
    runtime: str
    batch: int
    threads: int
    ms_per_call: float
    note: str = ""

    @property
    def ms_per_image(self) -> float:
        """Milliseconds per image (per call / batch)."""
        return self.ms_per_call / self.batch


def _time_ms(fn: Callable[[], object], repeats: int, stat: str = "median", warmup: int = 3,
             sync: Optional[Callable[[], None]] = None) -> float:
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return 1e3 * (min(times) if stat == "min" else statistics.median(times))


def _litert_runner(path, batch: int, threads: int, x_nhwc: np.ndarray):
    """A zero-argument callable running LiteRT on ``x_nhwc`` (B, H, W, 3), and a note."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=threads)
    inp = it.get_input_details()[0]
    outs = [o["index"] for o in it.get_output_details()]
    note = ""
    if batch > 1:
        try:
            it.resize_tensor_input(inp["index"], list(x_nhwc.shape), strict=False)
            it.allocate_tensors()
            it.set_tensor(inp["index"], x_nhwc)
            it.invoke()
            if it.get_tensor(outs[0]).shape[0] != batch:
                raise ValueError("batch not propagated")
        except (ValueError, RuntimeError):
            it = Interpreter(model_path=str(path), num_threads=threads)
            note = "B single calls"
    if note or batch == 1:
        it.allocate_tensors()

        def run():
            res = []
            for i in range(batch):
                it.set_tensor(inp["index"], x_nhwc[i:i + 1])
                it.invoke()
                res.append([it.get_tensor(o) for o in outs])
            return res
        return run, note

    def run_batched():
        it.set_tensor(inp["index"], x_nhwc)
        it.invoke()
        return [it.get_tensor(o) for o in outs]
    return run_batched, note


def bench_models(device: str = "auto", batch_sizes: Sequence[int] = (1, 2, 4, 8, 16),
                 repeats: int = 30, threads: Sequence[int] = (1, 2),
                 networks: Sequence[str] = NETWORKS, model_dir: Optional[str] = None,
                 litert: bool = True, stat: str = "median") -> List[BenchRow]:
    """Time every network and batch size; returns the rows (see :class:`BenchRow`).

    device: "auto" adds torch CUDA rows when a GPU is present; "cpu" never does.
    litert: False skips the LiteRT rows (also skipped, with a note, when not installed).
    stat: "median" of the repeats, or "min" (robust on a machine shared with other work).
    The torch thread count is restored afterwards.
    """
    rows: List[BenchRow] = []
    cpu = load_face_models(model_dir, device="cpu", which=networks)
    cuda = None
    if device != "cpu" and torch.cuda.is_available():
        cuda = load_face_models(model_dir, device=device if device != "auto" else "cuda",
                                which=networks)
    have_litert = litert
    if litert:
        try:
            import ai_edge_litert.interpreter  # noqa: F401
        except ImportError:
            have_litert = False
            print("ai_edge_litert not importable: LiteRT rows skipped "
                  "(pip install ai-edge-litert)", file=sys.stderr)
    saved_threads = torch.get_num_threads()
    rng = np.random.default_rng(0)
    try:
        for net in networks:
            side = INPUT_SIZES[net]
            lo = -1.0 if net in ("short", "full") else 0.0
            path = model_store.resolve_model(net, model_dir)
            for b in batch_sizes:
                x = rng.uniform(lo, 1.0, (b, side, side, 3)).astype(np.float32)
                xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
                for t in threads:
                    torch.set_num_threads(t)
                    fn = getattr(cpu, _CALLS[net])
                    rows.append(BenchRow(net, "torch-cpu", b, t,
                                         _time_ms(lambda: fn(xt), repeats, stat)))
                    if have_litert:
                        run, note = _litert_runner(path, b, t, x)
                        rows.append(BenchRow(net, "litert-cpu", b, t,
                                             _time_ms(run, repeats, stat), note))
                if cuda is not None:
                    fn = getattr(cuda, _CALLS[net])
                    xc = xt.to(cuda.device)
                    rows.append(BenchRow(net, "torch-cuda", b, 0,
                                         _time_ms(lambda: fn(xc), repeats, stat,
                                                  sync=torch.cuda.synchronize)))
    finally:
        torch.set_num_threads(saved_threads)
    return rows


def format_table(rows: Sequence[BenchRow]) -> str:
    """A markdown table: one line per network, batch and thread count."""
    lines = ["| network | batch | threads | torch CPU ms | LiteRT ms | torch/LiteRT | "
             "torch CUDA ms | torch CPU ms/image |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    keyed = {(r.network, r.runtime, r.batch, r.threads): r for r in rows}
    cuda = {(r.network, r.batch): r for r in rows if r.runtime == "torch-cuda"}
    for r in rows:
        if r.runtime != "torch-cpu":
            continue
        lite = keyed.get((r.network, "litert-cpu", r.batch, r.threads))
        gpu = cuda.get((r.network, r.batch))
        lite_s = f"{lite.ms_per_call:.2f}" + (" *" if lite and lite.note else "") if lite else "-"
        ratio = f"{r.ms_per_call / lite.ms_per_call:.2f}" if lite else "-"
        gpu_s = f"{gpu.ms_per_call:.3f}" if gpu else "-"
        lines.append(f"| {r.network} | {r.batch} | {r.threads} | {r.ms_per_call:.2f} | {lite_s} "
                     f"| {ratio} | {gpu_s} | {r.ms_per_image:.2f} |")
    if any(r.note for r in rows):
        lines.append("")
        lines.append("\\* LiteRT graph not resizable to this batch: B single calls timed.")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(prog="bench_models", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=NETWORKS)
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--no-litert", action="store_true")
    parser.add_argument("--stat", choices=("median", "min"), default="median",
                        help="statistic over the repeats (min resists load from other work)")
    args = parser.parse_args(argv)
    rows = bench_models(args.device, args.batch, args.repeats, args.threads, args.networks,
                        args.model_dir, litert=not args.no_litert, stat=args.stat)
    print(f"torch {torch.__version__}, CPU threads {args.threads}, {args.stat} of "
          f"{args.repeats} calls, "
          f"CUDA: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
