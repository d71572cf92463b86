"""DLPack round trips: results come back as arrays of the input's own library, on its device.
PyTorch, CuPy and JAX cases are skipped when the library is not installed; CUDA cases when
there is no GPU."""

import numpy as np
import pytest

import culoss
from conftest import optional_import

torch = optional_import("torch")
cupy = optional_import("cupy")
jax = optional_import("jax")

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
needs_jax = pytest.mark.skipif(jax is None, reason="JAX is not installed")


def _cupy_has_device():
    try:
        return cupy is not None and cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def _jax_gpu():
    try:
        return [d for d in jax.devices() if d.platform == "gpu"] if jax is not None else []
    except Exception:
        return []


TORCH_CUDA = torch is not None and torch.cuda.is_available()
CUPY_CUDA = _cupy_has_device()


def _problem(rng, dtype=np.float32):
    x = rng.standard_normal((2, 3, 8, 8)).astype(dtype)
    t = rng.integers(0, 3, (2, 8, 8))
    pw = rng.uniform(0.5, 1.5, (2, 8, 8)).astype(np.float32)
    return x, t, pw


LOSSES = [culoss.Dice(include_background=False), culoss.CrossEntropy(reduction="none"),
          culoss.Dice() + 0.5 * culoss.CrossEntropy(), culoss.LovaszSoftmax()]


@needs_torch
@pytest.mark.parametrize("loss", LOSSES, ids=repr)
def test_torch_cpu(loss, rng):
    x, t, pw = _problem(rng)
    ref_v, ref_g = loss(x, t, pw)
    xt = torch.from_numpy(x).requires_grad_(True)  # the core API detaches it
    v, g = loss(xt, torch.from_numpy(t), torch.from_numpy(pw))
    assert isinstance(v, torch.Tensor) and isinstance(g, torch.Tensor)
    assert v.device.type == "cpu" and v.dtype == torch.float32 and g.dtype == torch.float32
    np.testing.assert_array_equal(v.numpy(), ref_v)
    np.testing.assert_array_equal(g.numpy(), ref_g)
    # mixed producers on one device are fine: a torch input, NumPy targets
    v2, _ = loss(xt, t, pw)
    np.testing.assert_array_equal(v2.numpy(), ref_v)


@needs_torch
def test_torch_half_precision_cpu(rng):
    x, t, _ = _problem(rng)
    for dtype in (torch.float16, torch.bfloat16):
        xt = torch.from_numpy(x).to(dtype)
        v, g = culoss.CrossEntropy()(xt, torch.from_numpy(t))
        assert v.dtype == torch.float32 and g.dtype == dtype
        ref, _ = culoss.CrossEntropy()(xt.float().numpy(), t)
        assert abs(float(v) - float(ref)) < 1e-5
        _, g32 = culoss.CrossEntropy()(xt, torch.from_numpy(t), grad_dtype="float32")
        assert g32.dtype == torch.float32


@needs_jax
@pytest.mark.parametrize("loss", LOSSES, ids=repr)
def test_jax_cpu(loss, rng):
    import jax.numpy as jnp
    x, t, pw = _problem(rng)
    ref_v, ref_g = loss(x, t, pw)
    cpu = jax.devices("cpu")[0]
    xj = jax.device_put(jnp.asarray(x), cpu)
    tj = jax.device_put(jnp.asarray(t.astype(np.int32)), cpu)
    pj = jax.device_put(jnp.asarray(pw), cpu)
    v, g = loss(xj, tj, pj)
    assert isinstance(v, jax.Array) and isinstance(g, jax.Array)
    np.testing.assert_array_equal(np.asarray(v), ref_v)
    np.testing.assert_array_equal(np.asarray(g), ref_g)


# ----------------------------------------------------------------------------- CUDA

@pytest.mark.skipif(not TORCH_CUDA, reason="no CUDA device for PyTorch")
@pytest.mark.parametrize("loss", LOSSES, ids=repr)
def test_torch_cuda(loss, rng):
    x, t, pw = _problem(rng)
    ref_v, ref_g = loss(x, t, pw)
    xc = torch.from_numpy(x).cuda()
    tc = torch.from_numpy(t).cuda()
    pc = torch.from_numpy(pw).cuda()
    v, g = loss(xc, tc, pc)
    assert v.device == xc.device and g.device == xc.device
    np.testing.assert_allclose(v.cpu().numpy(), ref_v, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g.cpu().numpy(), ref_g, rtol=1e-4, atol=1e-7)
    # on a side stream, with inputs made on that stream
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        v2, g2 = loss(xc * 1.0, tc, pc)
    torch.cuda.current_stream().wait_stream(s)
    torch.testing.assert_close(v2, v)
    torch.testing.assert_close(g2, g)
    assert loss.workspace_size(xc, tc) > 0


@pytest.mark.skipif(not CUPY_CUDA, reason="CuPy with a CUDA device is not available")
@pytest.mark.parametrize("loss", LOSSES, ids=repr)
def test_cupy(loss, rng):
    x, t, pw = _problem(rng)
    ref_v, ref_g = loss(x, t, pw)
    xc, tc, pc = cupy.asarray(x), cupy.asarray(t), cupy.asarray(pw)
    v, g = loss(xc, tc, pc)
    assert isinstance(v, cupy.ndarray) and isinstance(g, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(v), ref_v, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cupy.asnumpy(g), ref_g, rtol=1e-4, atol=1e-7)
    with cupy.cuda.Stream(non_blocking=True) as s:
        v2, g2 = loss(xc * 1.0, tc, pc)
        s.synchronize()
    np.testing.assert_array_equal(cupy.asnumpy(v2), cupy.asnumpy(v))
    np.testing.assert_array_equal(cupy.asnumpy(g2), cupy.asnumpy(g))


@pytest.mark.skipif(not (_jax_gpu() and (CUPY_CUDA or TORCH_CUDA)),
                    reason="JAX on a GPU (and CuPy or PyTorch to allocate) is not available")
def test_jax_cuda(rng):
    import jax.numpy as jnp
    x, t, pw = _problem(rng)
    ref_v, ref_g = culoss.Dice()(x, t, pw)
    gpu = _jax_gpu()[0]
    xj = jax.device_put(jnp.asarray(x), gpu)
    tj = jax.device_put(jnp.asarray(t.astype(np.int32)), gpu)
    pj = jax.device_put(jnp.asarray(pw), gpu)
    v, g = culoss.Dice()(xj, tj, pj)
    assert isinstance(v, jax.Array)
    np.testing.assert_allclose(np.asarray(v), ref_v, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(g), ref_g, rtol=1e-4, atol=1e-7)
