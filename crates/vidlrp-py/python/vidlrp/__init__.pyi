"""Type stubs of vidlrp (the native module's API as `vidlrp` presents it)."""

from os import PathLike
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

class Error(Exception):
    """Base of every error vidlrp raises."""

class InputError(Error, ValueError):
    """Bad input: dtype, shape, non-finite values, an unknown name or option."""

class MissingFileError(Error, FileNotFoundError):
    """A path that does not exist."""

Path = Union[str, "PathLike[str]"]

class Explanation:
    """The result of :meth:`Model.explain`.

    >>> e = model.explain(clip)
    >>> e.relevance.shape == clip.shape
    True
    """

    @property
    def relevance(self) -> npt.NDArray[np.float32]:
        """Relevance of every input value, in the shape of the clips given."""
    @property
    def logits(self) -> npt.NDArray[np.float32]:
        """Logits ``(N, classes)``, or ``(classes,)`` for one clip."""
    @property
    def explained_class(self) -> Union[int, List[int]]:
        """The class explained (one per clip for a batch)."""
    @property
    def conservation(self) -> Union[float, List[float]]:
        """``sum R / f_c(x)``: 1 for a conserving explanation (one per clip for a batch)."""
    @property
    def layers(self) -> List[Dict[str, Any]]:
        """Per layer from the output down: ``layer``, ``kind``, ``rule``, ``output_sum``,
        ``input_sum`` (per clip)."""

class Model:
    """A network's weights and what vidlrp read about them (see :func:`load`).

    >>> vidlrp.load("c3d.pickle").info["architecture"]
    'c3d'
    """

    @property
    def info(self) -> Dict[str, Any]:
        """path, format, origin, architecture, widths, classes, parameters, pool5, preset,
        input_size ``(3, T, H, W)``, skipped (what the file held besides the network)."""
    def explain(
        self,
        clips: npt.NDArray[np.float32],
        method: str = "dtd",
        target: Union[None, int, Sequence[int], npt.NDArray[np.integer]] = None,
        *,
        pool: Optional[str] = None,
        bounds: Union[None, str, Tuple[Sequence[float], Sequence[float]]] = None,
        device: str = "cpu",
        threads: int = 0,
    ) -> Explanation:
        """Explain ``clips`` (float32 ``(3, T, H, W)`` or ``(N, 3, T, H, W)``) with ``method``
        (``vidlrp.methods()``: dtd, sa, gradient, gradient-x-input, the Zennit composites, ...)
        for ``target`` (None: each clip's top class). ``pool``: proportional or wta;
        ``bounds``: z^B bounds as a preset name or ``(low, high)`` per channel (default: the
        model's preset); ``device``: cpu, reference (plain f64 loops: slow, the oracle),
        cuda or cuda:N (the NVIDIA driver, NVRTC and cuBLAS loaded when first used; an error
        where there are none); ``threads``: 0 for all cores (CPU). The GIL is released while
        it runs. On the CPU a C-contiguous float32 array is read in place, without a copy
        (other layouts are copied once, in C order; do not write the array from another thread
        during the call); the result's arrays take the engine's buffers without a copy.

        >>> e = model.explain(clip, "dtd")
        >>> round(e.conservation, 3)
        1.0
        """

def load(path: Path, *, pool5: Optional[str] = None, preset: Optional[str] = None) -> Model:
    """Read a model from any weight file vidlrp reads: safetensors, .npz, PyTorch zip or legacy
    checkpoints (C3D ports, MMAction2, torchvision's video ResNets), Caffe models. ``pool5``:
    C3D's pool5 variant (port or caffe; default: the origin's). ``preset``: caffe, port,
    kinetics (optionally ``@SIZE``; default: the one recorded, else the family's).

    >>> model = vidlrp.load("r3d_18.pth")
    """

def read_snippet(
    video: Path, offset: int = 0, step: int = 1, preset: str = "caffe", length: int = 16
) -> npt.NDArray[np.float32]:
    """Frames ``offset, offset + step, ...`` (``length`` of them) of a video file, a frames
    directory or an ``.npy`` of frames, preprocessed by ``preset``: float32 ``(3, length, H, W)``.

    >>> clip = vidlrp.read_snippet("tennis/", step=2, preset="caffe")
    """

def frame_shares(relevance: npt.NDArray[np.float32]) -> List[float]:
    """Frame shares ``r_t = R_t / sum_t' R_t'`` of one relevance map ``(3, T, H, W)``.

    >>> sum(vidlrp.frame_shares(e.relevance))
    1.0
    """

def border_fit(shares: Sequence[float]) -> Tuple[float, float, float]:
    """Least squares ``r(tau) ~ a tau^2 + b tau + c``; ``a`` is the border strength.

    >>> a, b, c = vidlrp.border_fit(shares)
    """

def lookahead_fit(shares: Sequence[float]) -> Tuple[float, float]:
    """Least squares ``r(tau) ~ b' tau + c'``; ``b'`` is the lookahead strength.

    >>> slope, intercept = vidlrp.lookahead_fit(shares)
    """

def methods() -> List[Tuple[str, str]]:
    """The method names :meth:`Model.explain` takes, each with a one-line description."""
