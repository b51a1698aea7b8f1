"""The four MediaPipe face networks as typed torch modules on one device.

Each ``.tflite`` file of the verified model folder is converted at load time by
:func:`face3d_ros.core.tflite_torch.convert_tflite` (no pickled torch weights are kept). The
networks run in NCHW with channels_last memory, batch first, under ``torch.inference_mode()``.

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

from typing import Dict, Iterable, Mapping, Optional, Tuple, Union

import torch

from . import model_store
from .tflite_torch import convert_tflite

__all__ = ["FaceModels", "load_face_models", "resolve_device", "INPUT_SIZES"]

#: Network key -> input side in pixels.
INPUT_SIZES = {"short": 128, "full": 192, "mesh": 192, "iris": 64}


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


class FaceModels:
    """The converted networks on one :class:`torch.device` (see the module docstring).

    nets: key ("short", "full", "mesh", "iris") -> converted module; only those loaded.
    """

    def __init__(self, nets: Mapping[str, torch.nn.Module], device: torch.device) -> None:
        self.device = device
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


def load_face_models(model_dir: Optional[str] = None,
                     device: Union[str, torch.device] = "auto",
                     which: Iterable[str] = ("short", "full", "mesh", "iris")) -> FaceModels:
    """Convert the verified ``.tflite`` files of ``model_dir`` onto ``device``.

    model_dir: None uses ``$FACE3D_MODEL_DIR`` or ``~/.cache/face3d/models``. device: a
    :class:`torch.device` or a name for :func:`resolve_device` (CUDA falls back to the CPU).
    Raises ``ModelNotFoundError`` / ``ModelHashError`` naming the fix (``face3d-fetch-models``).
    """
    if not isinstance(device, torch.device):
        device, _ = resolve_device(device)
    nets = {}
    for key in which:
        if key not in INPUT_SIZES:
            raise ValueError(f"unknown network {key!r}; expected one of {sorted(INPUT_SIZES)}")
        nets[key] = convert_tflite(model_store.resolve_model(key, model_dir))
    return FaceModels(nets, device)
