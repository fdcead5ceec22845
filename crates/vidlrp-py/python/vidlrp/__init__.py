"""vidlrp: explain video 3D-CNNs (C3D, torchvision's video ResNets) with deep Taylor
decomposition / LRP, from Python.

>>> import numpy, vidlrp
>>> model = vidlrp.load("model.safetensors")            # any weight file vidlrp reads
>>> clip = vidlrp.read_snippet("video.mp4", preset=model.info["preset"])
>>> e = model.explain(clip, "dtd")                       # (3, 16, H, W) float32 in and out
>>> vidlrp.border_fit(vidlrp.frame_shares(e.relevance))  # (a, b, c): border strength a

Errors are `vidlrp.Error`; bad input is also a `ValueError` (`vidlrp.InputError`), a missing
file a `FileNotFoundError` (`vidlrp.MissingFileError`).
"""


class Error(Exception):
    """Base of every error vidlrp raises (unreadable or refused files, engine failures)."""


class InputError(Error, ValueError):
    """Bad input: dtype, shape, non-finite values, an unknown name or option."""


class MissingFileError(Error, FileNotFoundError):
    """A path that does not exist."""


from ._native import (  # noqa: E402  (the exceptions above must exist first)
    Explanation,
    Model,
    __version__,
    border_fit,
    frame_shares,
    load,
    lookahead_fit,
    methods,
    read_snippet,
)

__all__ = [
    "Error",
    "InputError",
    "MissingFileError",
    "Model",
    "Explanation",
    "load",
    "read_snippet",
    "frame_shares",
    "border_fit",
    "lookahead_fit",
    "methods",
    "__version__",
]
