"""Each inference backend of each MediaPipe network against Google's LiteRT runtime.

The torch port (``FaceModels``) and face3d's LiteRT backend (``LiteRTModels``, one call per
image, NHWC numpy in and out through ``infer``) get the same inputs as a reference LiteRT
interpreter of their own.

Inputs are real image content (skimage astronaut, matplotlib grace_hopper crops and resizes)
and a seeded random tensor. Measured worst errors on x86 CPU (float32 both sides): landmarks
and raw boxes below 2e-4 px, logits below 1e-4; the asserted tolerances leave a wide margin
for other BLAS/oneDNN builds while still catching any layout, padding or weight-order error
(those give errors of pixels).
"""

import cv2
import matplotlib.image as mpimg
import numpy as np
import pytest
import skimage.data
import torch
from matplotlib import cbook

from face3d_ros.core.io import model_store
from face3d_ros.core.pipeline.models import load_face_models

litert = pytest.importorskip(
    "ai_edge_litert.interpreter",
    reason="ai-edge-litert (Google's LiteRT runtime, the reference) is not installed; "
           "pip install ai-edge-litert to run the parity tests")

#: Max abs error allowed, px, for landmarks and raw boxes (measured < 2e-4).
PX_TOL = 0.01
#: Max abs error allowed for logits, relative to max(1, |reference|) (measured < 1e-4).
LOGIT_TOL = 1e-3
#: Max abs difference between one batched call and single calls (px or logits).
BATCH_TOL = 1e-3

ASTRONAUT_FACE = (170, 60, 260, 180)  # x0, y0, x1, y1 px
HOPPER_FACE = (170, 150, 360, 340)


def hopper() -> np.ndarray:
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(mpimg.imread(f, format="jpg"))


def square_crop(img: np.ndarray, cx: float, cy: float, side: float, out: int) -> np.ndarray:
    """(out, out, 3) float32 0..255 crop centred at (cx, cy), border replicated."""
    s = out / side
    m = np.array([[s, 0, out / 2 - s * cx], [0, s, out / 2 - s * cy]], np.float32)
    return cv2.warpAffine(img, m, (out, out), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE).astype(np.float32)


def face_crop(img: np.ndarray, box, out: int) -> np.ndarray:
    x0, y0, x1, y1 = box
    return square_crop(img, (x0 + x1) / 2, (y0 + y1) / 2, 1.5 * max(x1 - x0, y1 - y0), out)


class LiteRT:
    """One LiteRT interpreter per model, single-image NHWC calls."""

    def __init__(self, path):
        self.it = litert.Interpreter(model_path=str(path), num_threads=1)
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]["index"]
        self.outs = [o["index"] for o in self.it.get_output_details()]

    def __call__(self, x_nhwc: np.ndarray):
        self.it.set_tensor(self.inp, x_nhwc[None].astype(np.float32))
        self.it.invoke()
        return [self.it.get_tensor(i)[0].reshape(-1) for i in self.outs]


@pytest.fixture(scope="module", params=["torch", "litert"])
def models(model_dir, request):
    return load_face_models(model_dir, device="cpu", backend=request.param, threads=2)


@pytest.fixture(scope="module")
def ref(model_dir):
    return {k: LiteRT(model_store.resolve_model(k, model_dir))
            for k in ("short", "full", "mesh", "iris")}


def inputs(key: str, ref) -> list:
    """Three (S, S, 3) float32 inputs in the network's range: two real, one random."""
    astro, grace = skimage.data.astronaut(), hopper()
    rng = np.random.default_rng(7)
    if key in ("short", "full"):
        side = 128 if key == "short" else 192
        real = [cv2.resize(im, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
                / 127.5 - 1.0 for im in (astro, grace)]
        return real + [rng.uniform(-1, 1, (side, side, 3)).astype(np.float32)]
    if key == "mesh":
        real = [face_crop(astro, ASTRONAUT_FACE, 192) / 255.0,
                face_crop(grace, HOPPER_FACE, 192) / 255.0]
        return real + [rng.uniform(0, 1, (192, 192, 3)).astype(np.float32)]
    # iris: the subject's right eye (mesh landmarks 33, 133) and the mirrored left eye
    # (362, 263) of the astronaut, located with the reference mesh network.
    crop = face_crop(astro, ASTRONAUT_FACE, 192)
    lm = ref["mesh"](crop / 255.0)[0].reshape(468, 3)
    eyes = []
    for a, b, mirror in ((33, 133, False), (362, 263, True)):
        cx, cy = (lm[a, :2] + lm[b, :2]) / 2
        side = 2.3 * np.linalg.norm(lm[a, :2] - lm[b, :2])
        eye = square_crop(crop, cx, cy, side, 64) / 255.0
        eyes.append(eye[:, ::-1].copy() if mirror else eye)
    return eyes + [rng.uniform(0, 1, (64, 64, 3)).astype(np.float32)]


def run_torch(models, key: str, batch: np.ndarray):
    """The backend's tensor API on a (B, S, S, 3) batch; outputs flattened per image."""
    x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)
    fn = {"short": models.detect_short, "full": models.detect_full, "mesh": models.mesh,
          "iris": models.iris}[key]
    return [o.reshape(o.shape[0], -1).numpy() for o in fn(x)]


def run_nhwc(models, key: str, batch: np.ndarray):
    """The backend's numpy API (NHWC in, what the CPU path uses); outputs flattened."""
    return [o.reshape(o.shape[0], -1) for o in models.infer(key, batch)]


# Output names in the order FaceModels returns them (also LiteRT's output order), and which
# are pixel-valued.
OUTPUTS = {"short": (("boxes", True), ("scores", False)),
           "full": (("boxes", True), ("scores", False)),
           "mesh": (("landmarks", True), ("face_flag", False)),
           "iris": (("eye_contour", True), ("iris", True))}


@pytest.mark.parametrize("api", ["tensor", "nhwc"])
@pytest.mark.parametrize("key", ["short", "full", "mesh", "iris"])
def test_matches_litert(models, ref, key, api):
    xs = inputs(key, ref)
    got = (run_torch if api == "tensor" else run_nhwc)(models, key, np.stack(xs))
    for i, x in enumerate(xs):
        want = ref[key](x)
        for (name, is_px), g, w in zip(OUTPUTS[key], got, want):
            assert g[i].shape == w.shape, (key, name)
            err = np.abs(g[i] - w)
            if is_px:
                assert err.max() < PX_TOL, f"{key}.{name} input {i}: max error {err.max()} px"
            else:
                rel = err / np.maximum(1.0, np.abs(w))
                assert rel.max() < LOGIT_TOL, f"{key}.{name} input {i}: rel error {rel.max()}"


@pytest.mark.parametrize("key", ["short", "full", "mesh", "iris"])
def test_batch_equals_single_calls(models, ref, key):
    xs = inputs(key, ref)
    batched = run_torch(models, key, np.stack(xs))
    for i, x in enumerate(xs):
        single = run_torch(models, key, x[None])
        for b, s in zip(batched, single):
            assert np.abs(b[i] - s[0]).max() < BATCH_TOL


def test_backends_agree(model_dir, ref):
    """torch and LiteRT backends give the same outputs on the same batch (both within the
    tolerances above of the reference; measured below 2e-4 px between them)."""
    back = {b: load_face_models(model_dir, device="cpu", backend=b, threads=1)
            for b in ("torch", "litert")}
    for key in ("short", "full", "mesh", "iris"):
        batch = np.stack(inputs(key, ref))
        a, b = (run_nhwc(back[k], key, batch) for k in ("torch", "litert"))
        for (name, is_px), x, y in zip(OUTPUTS[key], a, b):
            err = np.abs(x - y) if is_px else np.abs(x - y) / np.maximum(1.0, np.abs(y))
            assert err.max() < (PX_TOL if is_px else LOGIT_TOL), f"{key}.{name}: {err.max()}"


def test_nhwc_input_is_checked(models):
    """A wrong layout names the expected one."""
    with pytest.raises(ValueError, match=r"\(B, 192, 192, 3\)"):
        models.infer("mesh", np.zeros((1, 3, 192, 192), np.float32))


def test_real_content_is_recognised(models, ref):
    """Sanity on what the outputs mean: a face crop gets a high face flag, noise a low one,
    and the astronaut's detected face lies on her face region."""
    xs = inputs("mesh", ref)
    _, flag = models.mesh(torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2))
    assert flag[0] > 5 and flag[1] > 5 and flag[2] < 0, flag
    lm, _ = models.mesh(torch.from_numpy(xs[0][None]).permute(0, 3, 1, 2))
    assert lm.shape == (1, 468, 3)
    # The face fills the middle two thirds of the crop: landmarks inside it, nose tip (1)
    # near the centre.
    assert 30 < lm[0, :, 0].min() and lm[0, :, 0].max() < 162
    assert abs(lm[0, 1, 0] - 96) < 20 and abs(lm[0, 1, 1] - 96) < 30
