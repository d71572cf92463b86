"""culoss: fused loss functions (value and gradient) on DLPack arrays, CPU and CUDA.

    import culoss
    loss = culoss.Dice(activation="softmax", include_background=False, batch=True)
    value, grad = loss(logits, labels)                 # NumPy, PyTorch, CuPy, JAX arrays
    both = culoss.Dice() + 0.5 * culoss.BCE()          # one fused call for both

``culoss.torch`` has an ``nn.Module`` per kind with autograd, ``culoss.jax`` a function per loss
for ``jax.jit``/``jax.grad`` (an XLA FFI custom call); both are imported on first use.
"""

from __future__ import annotations

from ._errors import error_for as _error_for
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
MCC = _KIND_CLASSES["MCC"]
TopKCrossEntropy = _KIND_CLASSES["TopKCrossEntropy"]
HausdorffDT = _KIND_CLASSES["HausdorffDT"]
Boundary = _KIND_CLASSES["Boundary"]
ClDice = _KIND_CLASSES["ClDice"]


def library_path() -> str:
    """The file of the libculoss in use (loading it if needed)."""
    return _get_lib().path


def library_version() -> str:
    """The version of the libculoss in use, e.g. ``"0.1.0"``."""
    return _version_string(_get_lib().version_fn())


def last_error() -> str:
    """``culoss_last_error()`` of this thread."""
    return _get_lib().error_text()


def set_num_threads(n: int) -> None:
    """Threads of the CPU backend, process-wide (``culoss_set_num_threads``): ``n >= 1``, or 0
    for the default (``CULOSS_NUM_THREADS``, else one per CPU the process may use). Every count
    gives bitwise the same results. The ``culoss.torch`` modules set it to
    ``torch.get_num_threads()`` before each CPU call (a call of one chunk only when it
    differs)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError("n must be an int; got %s" % type(n).__name__)
    if not -2**31 <= n < 2**31:
        n = -1 if n < 0 else 2**31 - 1  # refused by the library with its message
    lib = _get_lib()
    status = lib.set_num_threads(n)
    if status != 0:
        raise _error_for(status, lib.status_name(status), lib.error_text(),
                         "culoss_set_num_threads")


def get_num_threads() -> int:
    """The number of threads CPU calls use now (``culoss_get_num_threads``)."""
    return int(_get_lib().get_num_threads())


def __getattr__(name: str):
    # `culoss.torch` / `culoss.jax` without importing torch or jax at `import culoss`
    if name in ("torch", "jax"):
        import importlib
        return importlib.import_module("." + name, __name__)
    raise AttributeError("module 'culoss' has no attribute %r" % name)


__all__ = [
    "Loss", "Sum", "Dice", "Jaccard", "Tversky", "FocalTversky", "GeneralizedDice", "BCE",
    "CrossEntropy", "Focal", "Combo", "MarginalCrossEntropy", "LovaszHinge", "LovaszSoftmax",
    "MCC",
    "TopKCrossEntropy",
    "HausdorffDT", "Boundary", "ClDice",
    "from_spec", "library_path", "library_version", "last_error", "load_library",
    "set_num_threads", "get_num_threads",
    "CulossError", "InvalidArgumentError", "ShapeMismatchError", "UnsupportedDtypeError",
    "UnsupportedDeviceError", "InvalidTargetError", "OutOfMemoryError",
    "InsufficientWorkspaceError", "CudaError", "NotSupportedError", "InternalError",
    "LibraryError", "EXPECTED_MAJOR",
]
