"""culoss: fused loss functions (value and gradient) on DLPack arrays, CPU and CUDA.

    import culoss
    loss = culoss.Dice(activation="softmax", include_background=False, batch=True)
    value, grad = loss(logits, labels)                 # NumPy, PyTorch, CuPy, JAX arrays
    both = culoss.Dice() + 0.5 * culoss.BCE()          # one fused call for both

``culoss.torch`` has an ``nn.Module`` per kind with autograd, ``culoss.jax`` a function per loss
for ``jax.jit``/``jax.grad`` (an XLA FFI custom call); both are imported on first use.
"""

from __future__ import annotations

from ._errors import (CudaError, CulossError, InsufficientWorkspaceError, InternalError,
                      InvalidArgumentError, InvalidTargetError, NotSupportedError,
                      OutOfMemoryError, ShapeMismatchError, UnsupportedDeviceError,
                      UnsupportedDtypeError)
from ._lib import EXPECTED_MAJOR, LibraryError
from ._lib import lib as _get_lib
from ._lib import load as load_library
from ._lib import version_string as _version_string
from ._loss import KIND_CLASSES as _KIND_CLASSES
from ._loss import Loss, Sum, from_spec

__version__ = "0.1.0"

Dice = _KIND_CLASSES["Dice"]
Jaccard = _KIND_CLASSES["Jaccard"]
Tversky = _KIND_CLASSES["Tversky"]
FocalTversky = _KIND_CLASSES["FocalTversky"]
GeneralizedDice = _KIND_CLASSES["GeneralizedDice"]
BCE = _KIND_CLASSES["BCE"]
CrossEntropy = _KIND_CLASSES["CrossEntropy"]
Focal = _KIND_CLASSES["Focal"]
Combo = _KIND_CLASSES["Combo"]
MarginalCrossEntropy = _KIND_CLASSES["MarginalCrossEntropy"]
LovaszHinge = _KIND_CLASSES["LovaszHinge"]
LovaszSoftmax = _KIND_CLASSES["LovaszSoftmax"]


def library_path() -> str:
    """The file of the libculoss in use (loading it if needed)."""
    return _get_lib().path


def library_version() -> str:
    """The version of the libculoss in use, e.g. ``"0.1.0"``."""
    return _version_string(_get_lib().version_fn())


def last_error() -> str:
    """``culoss_last_error()`` of this thread."""
    return _get_lib().error_text()


def __getattr__(name: str):
    # `culoss.torch` / `culoss.jax` without importing torch or jax at `import culoss`
    if name in ("torch", "jax"):
        import importlib
        return importlib.import_module("." + name, __name__)
    raise AttributeError("module 'culoss' has no attribute %r" % name)


__all__ = [
    "Loss", "Sum", "Dice", "Jaccard", "Tversky", "FocalTversky", "GeneralizedDice", "BCE",
    "CrossEntropy", "Focal", "Combo", "MarginalCrossEntropy", "LovaszHinge", "LovaszSoftmax",
    "from_spec", "library_path", "library_version", "last_error", "load_library",
    "CulossError", "InvalidArgumentError", "ShapeMismatchError", "UnsupportedDtypeError",
    "UnsupportedDeviceError", "InvalidTargetError", "OutOfMemoryError",
    "InsufficientWorkspaceError", "CudaError", "NotSupportedError", "InternalError",
    "LibraryError", "EXPECTED_MAJOR",
]
