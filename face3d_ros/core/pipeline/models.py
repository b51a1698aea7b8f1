"""The four MediaPipe face networks on one device, run by one of two inference backends.

* ``torch`` (:class:`FaceModels`): each ``.tflite`` file of the verified model folder is
  converted at load time by :func:`face3d_ros.core.pipeline.tflite_torch.convert_tflite` (no
  pickled torch
  weights are kept). The networks run in NCHW with channels_last memory, batch first, under
  ``torch.inference_mode()``, on the CPU or a CUDA device.
* ``litert`` (:class:`LiteRTModels`): Google's LiteRT runtime (``ai_edge_litert``, XNNPACK)
  runs the same ``.tflite`` files on the CPU, 2-3.5x faster than torch's CPU kernels on these
  small networks. Three of the four graphs reshape with a batch of 1, so a batch is run as one
  call per image (batching the mesh graph was measured not to help, docs/models.md), the
  images of a batch spread over ``threads`` single-thread interpreters running at once.

:func:`resolve_backend` picks one: "auto" is torch on CUDA and LiteRT on the CPU (torch, with a
warning, when ``ai_edge_litert`` is not installed). Both classes offer the same two interfaces:
the torch methods below (``detect_short``, ``mesh``, ...) and :meth:`FaceModels.infer`, which
takes and returns numpy arrays in the file's own NHWC layout (the host path of the engine uses
it: OpenCV crops go in without any layout copy; for torch they are viewed as channels_last).

Inputs and outputs (B is any batch size, all float32):

====================  ======================================  =====================================
network               input                                   outputs
====================  ======================================  =====================================
detect_short          (B, 3, 128, 128) RGB in [-1, 1]         raw boxes (B, 896, 16), raw score
                                                              logits (B, 896)
detect_full           (B, 3, 192, 192) RGB in [-1, 1]         raw boxes (B, 2304, 16), logits
                                                              (B, 2304)
mesh                  (B, 3, 192, 192) RGB in [0, 1]          landmarks (B, 468, 3) crop px,
                                                              face flag logit (B,)
iris                  (B, 3, 64, 64) RGB in [0, 1], a         eye contour (B, 71, 3) and iris
                      subject's RIGHT eye (mirror left eyes)  (B, 5, 3) crop px
====================  ======================================  =====================================

Raw boxes are the detector's regressions in input pixels relative to the anchor centres
(x, y, w, h, then 6 keypoints x, y), not decoded here. Landmark x, y are pixels of the crop
(0..192 or 0..64, origin top-left); z is relative depth on the same scale as x.
The iris network was trained on right eyes as they appear in the image (subject's right eye,
image left): crops of the subject's left eye must be mirrored horizontally by the caller, and
the outputs mirrored back (x -> 64 - x).
"""

from __future__ import annotations

import importlib.util
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch

from ..config import check_choice
from ..io import model_store
from .tflite_torch import convert_tflite

__all__ = ["FaceModels", "LiteRTModels", "load_face_models", "resolve_device",
           "resolve_backend", "litert_available", "INPUT_SIZES", "OUTPUT_SHAPES", "BACKENDS",
           "LITERT_REQUIREMENT", "DEFAULT_THREADS"]

#: Network key -> input side in pixels.
INPUT_SIZES = {"short": 128, "full": 192, "mesh": 192, "iris": 64}
#: Network key -> per-image shapes of its two outputs, in the order both backends return them.
OUTPUT_SHAPES: Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...]]] = {
    "short": ((896, 16), (896,)),
    "full": ((2304, 16), (2304,)),
    "mesh": ((468, 3), ()),
    "iris": ((71, 3), (5, 3)),
}
#: Accepted values of ``EngineConfig.backend``.
BACKENDS = ("auto", "torch", "litert")
#: What to install for the LiteRT backend (requirements/runtime.txt pins the same).
LITERT_REQUIREMENT = "ai-edge-litert==2.3.0"
#: Threads for ``threads=0``: torch's own default (the physical core count), as at import.
DEFAULT_THREADS = torch.get_num_threads()


def litert_available() -> bool:
    """Whether Google's LiteRT runtime (``ai_edge_litert``) can be imported."""
    try:
        return importlib.util.find_spec("ai_edge_litert") is not None
    except (ImportError, ValueError):
        return False


def resolve_backend(name: str, device: torch.device
                    ) -> Tuple[str, torch.device, Optional[str]]:
    """The inference backend for ``name`` ("auto", "torch", "litert") on ``device``.

    Returns (backend, device the networks run on, warning or None). "auto" gives torch on CUDA
    and LiteRT on the CPU, or torch with a warning when ``ai_edge_litert`` is not installed.
    "litert" runs on the CPU: with a CUDA device it moves everything to the CPU, with a warning.
    Raises ``ValueError`` for an unknown name and ``ImportError`` naming the package to install
    when "litert" is asked for explicitly and is not installed.
    """
    check_choice("backend", name, BACKENDS)
    if name == "torch" or (name == "auto" and device.type == "cuda"):
        return "torch", device, None
    if not litert_available():
        if name == "litert":
            raise ImportError(f"backend 'litert' needs Google's LiteRT runtime: pip install "
                              f"{LITERT_REQUIREMENT} (or use backend 'torch')")
        return "torch", device, (f"backend 'auto': LiteRT (ai_edge_litert) is not installed, so "
                                 f"the networks run in torch on the CPU, 2-3.5x slower; pip "
                                 f"install {LITERT_REQUIREMENT} for the fast CPU path")
    warning = None
    if device.type != "cpu":
        warning = (f"backend 'litert' runs on the CPU; device {str(device)!r} is not used "
                   "(use backend 'torch' or 'auto' for the GPU)")
    return "litert", torch.device("cpu"), warning


def resolve_device(name: Union[str, torch.device] = "auto") -> Tuple[torch.device, Optional[str]]:
    """The torch device for ``name`` ("auto", "cpu", "cuda", "cuda:N"), and a warning or None.

    "auto" gives CUDA when available, else the CPU. A CUDA device that is absent falls back to
    the CPU with a warning string for the caller to log (nothing is printed here).
    """
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu"), None
    try:
        dev = torch.device(name)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {name!r}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return torch.device("cpu"), f"device {name!r} requested but CUDA is not available " \
                                        "(torch built without CUDA or no GPU); using the CPU"
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            return torch.device("cpu"), (f"device {name!r} requested but only "
                                         f"{torch.cuda.device_count()} CUDA device(s) exist; "
                                         "using the CPU")
    return dev, None


def _check_nhwc(key: str, x: np.ndarray) -> np.ndarray:
    """``x`` as a C-contiguous float32 (B, S, S, 3) array for network ``key`` (ValueError)."""
    side = INPUT_SIZES[key]
    if x.ndim != 4 or tuple(x.shape[1:]) != (side, side, 3):
        raise ValueError(f"{key} network expects (B, {side}, {side}, 3) RGB (NHWC), got "
                         f"{tuple(x.shape)}")
    return np.ascontiguousarray(x, dtype=np.float32)


class FaceModels:
    """The converted networks on one :class:`torch.device` (see the module docstring).

    nets: key ("short", "full", "mesh", "iris") -> converted module; only those loaded.
    """

    #: Name of the inference backend.
    backend = "torch"
    #: Why the device or backend differs from the one asked for (set by ``FaceEngine``), or None.
    warning: Optional[str] = None

    def __init__(self, nets: Mapping[str, torch.nn.Module], device: torch.device) -> None:
        self.device = device
        #: Milliseconds spent in :meth:`infer` since creation (benchmarks read it).
        self.network_ms = 0.0
        self.nets: Dict[str, torch.nn.Module] = {}
        for key, net in nets.items():
            net = net.to(device)
            net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            self.nets[key] = net.eval()

    def __contains__(self, key: str) -> bool:
        return key in self.nets

    def _run(self, key: str, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        net = self.nets.get(key)
        if net is None:
            raise RuntimeError(f"network {key!r} was not loaded; pass which=(..., {key!r}) to "
                               "load_face_models")
        side = INPUT_SIZES[key]
        if x.dim() != 4 or tuple(x.shape[1:]) != (3, side, side):
            raise ValueError(f"{key} network expects (B, 3, {side}, {side}) RGB, got "
                             f"{tuple(x.shape)}")
        x = x.to(self.device, torch.float32).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return net(x)

    @staticmethod
    def _pick(outs: Tuple[torch.Tensor, ...], last: int) -> torch.Tensor:
        """The output whose last dimension is ``last`` (the graphs' output order differs)."""
        for o in outs:
            if o.shape[-1] == last:
                return o
        raise RuntimeError(f"no network output of width {last}: {[tuple(o.shape) for o in outs]}")

    def detect_short(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """x (B, 3, 128, 128) RGB in [-1, 1] -> raw boxes (B, 896, 16), logits (B, 896)."""
        outs = self._run("short", x)
        return self._pick(outs, 16), self._pick(outs, 1)[..., 0]

    def detect_full(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """x (B, 3, 192, 192) RGB in [-1, 1] -> raw boxes (B, 2304, 16), logits (B, 2304)."""
        outs = self._run("full", x)
        return self._pick(outs, 16), self._pick(outs, 1)[..., 0]

    def mesh(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """x (B, 3, 192, 192) RGB in [0, 1] -> landmarks (B, 468, 3) crop px, flag logit (B,)."""
        outs = self._run("mesh", x)
        lm = self._pick(outs, 1404).reshape(-1, 468, 3)  # (B, 468, 3)
        flag = self._pick(outs, 1).reshape(-1)  # (B,)
        return lm, flag

    def iris(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """x (B, 3, 64, 64) right-eye RGB in [0, 1] -> contour (B, 71, 3), iris (B, 5, 3) px."""
        outs = self._run("iris", x)
        contour = self._pick(outs, 213).reshape(-1, 71, 3)  # (B, 71, 3)
        iris = self._pick(outs, 15).reshape(-1, 5, 3)  # (B, 5, 3)
        return contour, iris

    def infer(self, key: str, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Run network ``key`` on ``x`` (B, S, S, 3) float32 NHWC; numpy outputs.

        The outputs are those of the torch methods, in their order and with the shapes of
        :data:`OUTPUT_SHAPES` (after B). The NHWC array is viewed as a channels_last NCHW
        tensor: no layout copy on the CPU.
        """
        t0 = time.perf_counter()
        xt = torch.from_numpy(_check_nhwc(key, x)).permute(0, 3, 1, 2)  # (B, 3, S, S) view
        fn = {"short": self.detect_short, "full": self.detect_full, "mesh": self.mesh,
              "iris": self.iris}[key]
        a, b = fn(xt)
        out = a.float().cpu().numpy(), b.float().cpu().numpy()
        self.network_ms += (time.perf_counter() - t0) * 1e3
        return out


class _Interpreter:
    """One LiteRT interpreter of network ``key`` with its input and output indices."""

    def __init__(self, key: str, path: Path, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.key = key
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        shapes = OUTPUT_SHAPES[key]
        sizes = [int(np.prod(s)) for s in shapes]
        outputs = {int(np.prod(o["shape"][1:])): o["index"]
                   for o in self.interpreter.get_output_details()}
        if sorted(outputs) != sorted(sizes):
            raise RuntimeError(f"{key}: LiteRT outputs of {sorted(outputs)} values per image, "
                               f"expected {sizes}")
        self.outputs = [outputs[n] for n in sizes]

    def run(self, x: np.ndarray, outs: List[np.ndarray], items: Iterable[int]) -> None:
        """Images ``items`` of ``x`` one call each, outputs written into ``outs`` rows."""
        it, shapes = self.interpreter, OUTPUT_SHAPES[self.key]
        for i in items:
            it.set_tensor(self.input, x[i:i + 1])
            it.invoke()  # releases the GIL
            for out, index, shape in zip(outs, self.outputs, shapes):
                out[i] = it.get_tensor(index).reshape(shape)


class _LiteRTNet:
    """One network in LiteRT, called one image at a time (its graph reshapes with batch 1).

    A single image runs on one interpreter with ``threads`` threads. A batch is split over
    ``threads`` single-thread interpreters ("lanes", made on first use) that run at the same
    time, one in the calling thread and the others in ``pool``: for these small graphs that
    uses the cores better than XNNPACK's threads inside one call (iris: 2 threads are no faster
    than 1 at batch 1; docs/models.md).
    """

    def __init__(self, key: str, path: Path, threads: int,
                 pool: Optional[ThreadPoolExecutor]) -> None:
        self.key, self.path, self.threads, self.pool = key, path, threads, pool
        self.main = _Interpreter(key, path, threads)
        self.lanes: List[_Interpreter] = []

    def __call__(self, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(B, S, S, 3) float32 C-contiguous -> the two outputs, (B, *OUTPUT_SHAPES[key])."""
        b = x.shape[0]
        outs = [np.empty((b,) + s, np.float32) for s in OUTPUT_SHAPES[self.key]]
        if b == 1 or self.pool is None:
            self.main.run(x, outs, range(b))
            return outs[0], outs[1]
        if not self.lanes:
            self.lanes = [_Interpreter(self.key, self.path, 1) for _ in range(self.threads)]
        chunks = [c for c in np.array_split(np.arange(b), len(self.lanes)) if len(c)]
        futures = [self.pool.submit(lane.run, x, outs, c)
                   for lane, c in zip(self.lanes[1:], chunks[1:])]
        self.lanes[0].run(x, outs, chunks[0])
        for f in futures:
            f.result()
        return outs[0], outs[1]


class LiteRTModels:
    """The networks in Google's LiteRT runtime on the CPU (see the module docstring).

    paths: key -> verified ``.tflite`` file; threads: CPU threads: LiteRT (XNNPACK) threads of
    a single-image call, and the number of images of a batch run at the same time.
    Same methods as :class:`FaceModels`; tensors in, tensors out on the CPU.
    """

    #: Name of the inference backend.
    backend = "litert"
    #: Why the device or backend differs from the one asked for (set by ``FaceEngine``), or None.
    warning: Optional[str] = None

    def __init__(self, paths: Mapping[str, Path], threads: int) -> None:
        self.device = torch.device("cpu")
        self.threads = threads
        self._pool = (ThreadPoolExecutor(threads - 1, thread_name_prefix="face3d-litert")
                      if threads > 1 else None)
        #: Milliseconds spent in :meth:`infer` since creation (benchmarks read it).
        self.network_ms = 0.0
        self.nets: Dict[str, _LiteRTNet] = {k: _LiteRTNet(k, Path(p), threads, self._pool)
                                            for k, p in paths.items()}

    def __contains__(self, key: str) -> bool:
        return key in self.nets

    def infer(self, key: str, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Run network ``key`` on ``x`` (B, S, S, 3) float32 NHWC (see :meth:`FaceModels.infer`).

        One LiteRT call per image (the graphs reshape with a batch of 1).
        """
        net = self.nets.get(key)
        if net is None:
            raise RuntimeError(f"network {key!r} was not loaded; pass which=(..., {key!r}) to "
                               "load_face_models")
        t0 = time.perf_counter()
        out = net(_check_nhwc(key, x))
        self.network_ms += (time.perf_counter() - t0) * 1e3
        return out

    def _run(self, key: str, x: torch.Tensor) -> List[torch.Tensor]:
        side = INPUT_SIZES[key]
        if x.dim() != 4 or tuple(x.shape[1:]) != (3, side, side):
            raise ValueError(f"{key} network expects (B, 3, {side}, {side}) RGB, got "
                             f"{tuple(x.shape)}")
        nhwc = x.detach().to("cpu", torch.float32).permute(0, 2, 3, 1).numpy()
        return [torch.from_numpy(o) for o in self.infer(key, nhwc)]

    def detect_short(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """x (B, 3, 128, 128) RGB in [-1, 1] -> raw boxes (B, 896, 16), logits (B, 896)."""
        boxes, logits = self._run("short", x)
        return boxes, logits

    def detect_full(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """x (B, 3, 192, 192) RGB in [-1, 1] -> raw boxes (B, 2304, 16), logits (B, 2304)."""
        boxes, logits = self._run("full", x)
        return boxes, logits

    def mesh(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """x (B, 3, 192, 192) RGB in [0, 1] -> landmarks (B, 468, 3) crop px, flag logit (B,)."""
        lm, flag = self._run("mesh", x)
        return lm, flag

    def iris(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """x (B, 3, 64, 64) right-eye RGB in [0, 1] -> contour (B, 71, 3), iris (B, 5, 3) px."""
        contour, iris = self._run("iris", x)
        return contour, iris


def load_face_models(model_dir: Optional[str] = None,
                     device: Union[str, torch.device] = "auto",
                     which: Iterable[str] = ("short", "full", "mesh", "iris"),
                     backend: str = "torch", threads: int = 0
                     ) -> Union[FaceModels, LiteRTModels]:
    """Load the verified ``.tflite`` files of ``model_dir`` for ``backend`` on ``device``.

    model_dir: None uses ``$FACE3D_MODEL_DIR`` or ``~/.cache/face3d/models``. device: a
    :class:`torch.device` or a name for :func:`resolve_device` (CUDA falls back to the CPU).
    backend: "torch" (converted modules on ``device``), "litert" (LiteRT on the CPU) or "auto"
    (:func:`resolve_backend`; its warning is the caller's to give, see ``FaceEngine``).
    threads: LiteRT threads per call; 0 uses :data:`DEFAULT_THREADS`.
    Raises ``ModelNotFoundError`` / ``ModelHashError`` naming the fix (``face3d-fetch-models``).
    """
    if not isinstance(device, torch.device):
        device, _ = resolve_device(device)
    backend, device, _ = resolve_backend(backend, device)
    paths = {}
    for key in which:
        if key not in INPUT_SIZES:
            raise ValueError(f"unknown network {key!r}; expected one of {sorted(INPUT_SIZES)}")
        paths[key] = model_store.resolve_model(key, model_dir)
    if backend == "litert":
        return LiteRTModels(paths, threads if threads > 0 else DEFAULT_THREADS)
    return FaceModels({k: convert_tflite(p) for k, p in paths.items()}, device)
