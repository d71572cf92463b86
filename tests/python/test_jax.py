"""culoss.jax: the XLA FFI custom call under jax.jit, jax.grad and jax.vmap, checked against the
NumPy path for every kind. Skipped when JAX is not installed; the CUDA cases run when JAX sees
a GPU and culoss was built with CUDA."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import optional_import

jax = optional_import("jax")
if jax is None:
    pytest.skip("JAX is not installed", allow_module_level=True)

import jax.numpy as jnp  # noqa: E402
from jax.test_util import check_grads  # noqa: E402

import culoss  # noqa: E402
import culoss.jax as cj  # noqa: E402  (ImportError here: the handler was not built)
from cases import CASES, case_id, make_inputs  # noqa: E402

REPO = os.path.join(os.path.dirname(__file__), "..", "..")
CASE_IDS = [case_id(c) for c in CASES]


def _gpus():
    try:
        return [d for d in jax.devices() if d.platform == "gpu"]
    except Exception:
        return []


needs_cuda = pytest.mark.skipif(not (_gpus() and cj.HAVE_CUDA),
                                reason="no JAX GPU, or culoss built without CUDA")


def problem(kind, params, rng, shape=(2, 3, 4, 5), dtype=np.float32):
    """(input, target, loss): int32 class indices (JAX's default integer) or a dense target."""
    x, t = make_inputs(kind, params, rng, shape=shape, dtype=dtype,
                       ignore="ignore_index" in params)
    if t.dtype == np.int64:
        t = t.astype(np.int32)
    return x, t, getattr(culoss, kind)(**params)


def grad_of_sum(f, t, scale=1.0):
    """The gradient of scale * sum(f(x, t)) with respect to x, jitted."""
    return jax.jit(jax.grad(lambda a: scale * f(a, t).sum()))


# ----------------------------------------------------------------------------- every kind

@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_matches_the_numpy_path(case, rng):
    kind, params = case
    x, t, loss = problem(kind, params, rng)
    ref_v, ref_g = loss(x, t)
    f = cj.function(loss)
    v = jax.jit(f)(x, t)
    assert v.dtype == jnp.float32 and v.shape == ref_v.shape
    g = grad_of_sum(f, t, 2.5)(x)
    assert g.dtype == jnp.float32 and g.shape == x.shape
    if loss.separable():  # the very same culoss call
        np.testing.assert_array_equal(np.asarray(v), ref_v)
        np.testing.assert_allclose(np.asarray(g), 2.5 * ref_g, rtol=1e-6, atol=1e-9)
    else:  # the softmax runs in JAX, culoss gets probabilities
        np.testing.assert_allclose(np.asarray(v), ref_v, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(g), 2.5 * ref_g, rtol=1e-4, atol=1e-6)
    # value_and_grad: the forward's value is the value
    v2, g2 = jax.jit(jax.value_and_grad(lambda a: 2.5 * f(a, t).sum()))(x)
    np.testing.assert_allclose(np.asarray(v2), 2.5 * np.asarray(v).sum(), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(g2), np.asarray(g))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_gradient_against_finite_differences(case, rng):
    kind, params = case
    with jax.enable_x64(True):
        x, t, loss = problem(kind, params, rng, shape=(2, 3, 3, 4), dtype=np.float64)
        f = jax.jit(cj.function(loss))
        # reverse mode only (custom_vjp), with a random cotangent on reduction="none" values
        check_grads(lambda a: f(a, t), (jnp.asarray(x),), order=1, modes=("rev",), eps=1e-6,
                    atol=1e-5, rtol=1e-3)


def test_cotangent_scales_the_saved_gradient(rng):
    x, t, _ = problem("CrossEntropy", {}, rng)
    w = rng.uniform(0.5, 2.0, t.shape).astype(np.float32)
    # reduction="none": the vjp with cotangent w is the gradient of sum(w * value), which is what
    # a pixel weight w gives the core call
    f = cj.function(culoss.CrossEntropy(reduction="none"))
    value, vjp = jax.vjp(lambda a: f(a, t), jnp.asarray(x))
    (g,) = vjp(jnp.asarray(w))
    ref_v, ref_g = culoss.CrossEntropy(reduction="sum")(x, t, w)
    np.testing.assert_allclose(np.asarray(value * w).sum(), ref_v, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(g), ref_g, rtol=1e-5, atol=1e-8)
    # a scalar loss: the cotangent multiplies the gradient
    m = cj.function(culoss.Dice())
    _, vjp = jax.vjp(lambda a: m(a, t), jnp.asarray(x))
    (g3,) = vjp(jnp.float32(-3.0))
    np.testing.assert_allclose(np.asarray(g3), -3.0 * culoss.Dice()(x, t)[1], rtol=1e-6)


def test_sums_and_pixel_weights(rng):
    x, t, _ = problem("CrossEntropy", {}, rng)
    pw = rng.uniform(0.5, 1.5, t.shape).astype(np.float32)
    for loss in (culoss.Dice(include_background=False) + 0.5 * culoss.CrossEntropy(),
                 culoss.Sum([(2.0, culoss.Tversky()), (1.0, culoss.Focal(
                     activation="softmax"))], check_targets=False)):
        f = cj.function(loss)
        for w in (None, pw):
            ref_v, ref_g = loss(x, t, w)
            v, g = jax.jit(jax.value_and_grad(f))(x, t, w)
            np.testing.assert_array_equal(np.asarray(v), ref_v)
            np.testing.assert_array_equal(np.asarray(g), ref_g)
    # binary sum on a dense boolean target (read as uint8)
    xb = rng.standard_normal((2, 1, 6, 7)).astype(np.float32)
    tb = rng.uniform(size=xb.shape) < 0.4
    loss = culoss.BCE() + culoss.Dice(activation="sigmoid")
    v, g = jax.jit(jax.value_and_grad(cj.function(loss)))(xb, tb)
    ref_v, ref_g = loss(xb, tb.astype(np.uint8))
    np.testing.assert_array_equal(np.asarray(v), ref_v)
    np.testing.assert_array_equal(np.asarray(g), ref_g)


# ----------------------------------------------------------------------------- dtypes

@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("loss", [culoss.Dice(), culoss.CrossEntropy(reduction="none"),
                                  culoss.LovaszSoftmax(), culoss.Dice() + culoss.CrossEntropy()],
                         ids=repr)
def test_input_dtypes(loss, dtype, rng):
    x, t, _ = problem("CrossEntropy", {}, rng)
    xh = jnp.asarray(x).astype(dtype)
    # culoss reads half inputs as they are: the reference is the float32 call on the same values
    ref_v, ref_g = loss(np.asarray(xh.astype(jnp.float32)), t)
    f = cj.function(loss)
    v, g = jax.jit(jax.value_and_grad(lambda a: 1024.0 * f(a, t).sum()))(xh)
    assert g.dtype == xh.dtype
    np.testing.assert_allclose(np.asarray(v), 1024.0 * ref_v.sum(), rtol=1e-6)
    expected = np.asarray(jnp.asarray(1024.0 * ref_g).astype(dtype).astype(jnp.float32))
    np.testing.assert_allclose(np.asarray(g.astype(jnp.float32)), expected, rtol=1e-2, atol=1e-6)
    if dtype != "float32":
        # float16: the residual stays float32 (small gradients survive a loss scale); bfloat16
        # (float32's range): it is bfloat16, the float32 gradient rounded
        jaxpr = str(jax.make_jaxpr(jax.grad(lambda a: f(a, t).sum()))(xh))
        residual = "float32" if dtype == "float16" else "bfloat16"
        assert "ShapedArray(%s[2,3,4,5])" % residual in re.search(r"result_avals=\((.*)\)",
                                                                  jaxpr)[1]
    if dtype == "bfloat16":  # a cotangent of 1: the float32 gradient rounded, bit for bit
        g1 = jax.jit(jax.grad(lambda a: f(a, t).sum()))(xh)
        np.testing.assert_array_equal(np.asarray(g1.astype(jnp.float32)),
                                      np.asarray(jnp.asarray(ref_g).astype(dtype)
                                                 .astype(jnp.float32)))


@pytest.mark.parametrize("index_dtype", ["int32", "int64", "uint8"])
def test_class_index_dtypes(index_dtype, rng):
    x, t, _ = problem("CrossEntropy", {}, rng)
    t = t.astype(index_dtype)
    for loss in (culoss.CrossEntropy(), culoss.Dice(), culoss.LovaszSoftmax(per_image=True)):
        ref_v, ref_g = loss(x, t)
        with jax.enable_x64(index_dtype == "int64"):  # int64 arrays need x64 in JAX
            tj = jnp.asarray(t)
            assert tj.dtype == np.dtype(index_dtype)
            v, g = jax.jit(jax.value_and_grad(cj.function(loss)))(jnp.asarray(x), tj)
        np.testing.assert_array_equal(np.asarray(v), ref_v)
        np.testing.assert_array_equal(np.asarray(g), ref_g)


def test_float64_input_gives_float64_value(rng):
    with jax.enable_x64(True):
        x, t, loss = problem("Dice", {}, rng, dtype=np.float64)
        v, g = jax.value_and_grad(cj.function(loss))(jnp.asarray(x), t)
        assert v.dtype == jnp.float64 and g.dtype == jnp.float64
        ref_v, ref_g = loss(x, t)
        np.testing.assert_array_equal(np.asarray(v), ref_v)
        np.testing.assert_array_equal(np.asarray(g), ref_g)


# ----------------------------------------------------------------------------- errors

def test_invalid_target_raises_naming_it(rng):
    x, t, _ = problem("CrossEntropy", {}, rng)
    t[1, 2, 3] = 7
    f = cj.function(culoss.CrossEntropy())
    for run in (f, jax.jit(f), jax.jit(jax.grad(f))):
        with pytest.raises(jax.errors.JaxRuntimeError,
                           match=r"CULOSS_ERROR_INVALID_TARGET.*target.*= 7 is not a class"):
            np.asarray(run(x, t))
    # unchecked: no error, no out-of-bounds access
    v = cj.function(culoss.CrossEntropy(check_targets=False))(x, t)
    assert v.shape == ()


def test_shape_and_dtype_errors_at_trace_time(rng):
    x, t, _ = problem("CrossEntropy", {}, rng)
    f = cj.function(culoss.CrossEntropy())
    with pytest.raises(culoss.ShapeMismatchError, match="target"):
        jax.jit(f).lower(x, t[:, :3])
    with pytest.raises(culoss.UnsupportedDtypeError, match="target"):
        jax.jit(f).lower(x, t.astype(np.int16))
    with pytest.raises(culoss.UnsupportedDtypeError, match="input"):
        f(x.astype(np.int32), t)
    with pytest.raises(TypeError, match="culoss loss"):
        cj.function("dice")


# ----------------------------------------------------------------------------- the program

def test_jaxpr_and_hlo_hold_one_custom_call_and_no_callback(rng):
    x, t, _ = problem("Dice", {}, rng)
    for loss, target in ((culoss.Dice(), "culoss_compute"),
                         (culoss.Dice(check_targets=False), "culoss_compute_graph")):
        f = cj.function(loss)
        step = jax.value_and_grad(f)
        jaxpr = str(jax.make_jaxpr(step)(x, t))
        calls = re.findall(r"target_name=(\w+)", jaxpr)  # one per platform branch (CPU, CUDA)
        assert set(calls) == {target} and 1 <= len(calls) <= 2
        assert not re.search(r"callback\[", jaxpr)  # pure_callback, io_callback, ...
        # the lowered program: one call computes value and gradient, nothing runs twice
        hlo = jax.jit(step).lower(x, t).as_text()
        assert re.findall(r"stablehlo\.custom_call @(\w+)", hlo) == [target]
        compiled = jax.jit(step).lower(x, t).compile().as_text()
        assert re.findall(r'custom_call_target="(\w+)"', compiled) == [target]


def test_handler_refuses_a_malformed_spec(rng):
    x, t, _ = problem("Dice", {}, rng)
    good_ints, good_floats = cj._encode(culoss.Dice())
    call = jax.ffi.ffi_call(cj.TARGET, [jax.ShapeDtypeStruct((), jnp.float32),
                                        jax.ShapeDtypeStruct((4096,), jnp.uint8)])
    bad = [(np.concatenate([[99], good_ints[1:]]), good_floats, "another version of culoss.jax"),
           (good_ints[:-1], good_floats, "malformed loss spec"),
           (good_ints, np.concatenate([good_floats, [1.0]]), "malformed loss spec"),
           (np.array([1, 1, -1, 42, 0, 0]), good_floats, "unknown culoss_kind 42")]
    for ints, floats, message in bad:
        with pytest.raises(jax.errors.JaxRuntimeError, match=message):
            np.asarray(call(x, t, spec_ints=np.asarray(ints, np.int64),
                            spec_floats=np.asarray(floats, np.float64))[0])
    v = call(x, t, spec_ints=good_ints, spec_floats=good_floats)[0]
    np.testing.assert_array_equal(np.asarray(v), culoss.Dice()(x, t)[0])


def test_forward_only_call_has_no_gradient_output(rng):
    x, t, _ = problem("Dice", {}, rng)
    jaxpr = str(jax.make_jaxpr(cj.function(culoss.Dice()))(x, t))
    assert "ffi_call" in jaxpr and "f32[2,3,4,5] = ffi_call" not in jaxpr
    assert "ShapedArray(float32[2,3,4,5])" not in jaxpr


# ----------------------------------------------------------------------------- vmap

@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_vmap_matches_a_loop(case, rng):
    kind, params = case
    x, t, loss = problem(kind, params, rng, shape=(6, 3, 4, 5))
    xb = x.reshape((3, 2) + x.shape[1:])
    tb = t.reshape((3, 2) + t.shape[1:])
    f = cj.function(loss)
    v = jax.jit(jax.vmap(f))(xb, tb)
    g = jax.jit(jax.vmap(jax.grad(lambda a, b: f(a, b).sum())))(xb, tb)
    for i in range(3):
        ref_v, ref_g = loss(xb[i], tb[i])
        np.testing.assert_allclose(np.asarray(v[i]), ref_v, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(np.asarray(g[i]), ref_g, rtol=1e-4, atol=1e-7)
    hlo = jax.jit(jax.vmap(f)).lower(xb, tb).as_text()
    folded = cj._Plan(loss).foldable(x.ndim)
    # folded: one call on 6 images; otherwise a loop of calls on 2 images
    assert ("stablehlo.while" not in hlo) == folded
    assert ("tensor<6x3x4x5xf32>" in hlo.split("custom_call")[1].split("\n")[0]) == folded


def test_vmap_with_shared_and_batched_arguments(rng):
    x, t, _ = problem("CrossEntropy", {}, rng)
    pw = rng.uniform(0.5, 1.5, (3,) + t.shape).astype(np.float32)
    for loss in (culoss.CrossEntropy(reduction="none"), culoss.CrossEntropy()):
        f = cj.function(loss)
        v = jax.vmap(f, in_axes=(None, None, 0))(x, t, pw)
        for i in range(3):
            np.testing.assert_allclose(np.asarray(v[i]), loss(x, t, pw[i])[0], rtol=1e-6)


# ----------------------------------------------------------------------------- packaging

def _run_python(code):
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=os.path.dirname(__file__), timeout=120)


def test_import_error_without_jax():
    r = _run_python("import sys; sys.modules['jax'] = None\n"
                    "import conftest\n"
                    "try:\n    import culoss.jax\nexcept ImportError as e:\n    print('MSG', e)")
    assert "MSG culoss.jax needs JAX" in r.stdout and "pip install jax" in r.stdout, r.stderr


def test_import_error_without_the_handler():
    r = _run_python("import os\nreal = os.path.isfile\n"
                    "os.path.isfile = lambda p: False if p.endswith('libculoss_jax.so') "
                    "else real(p)\n"
                    "import conftest\n"
                    "try:\n    import culoss.jax\nexcept ImportError as e:\n    print('MSG', e)")
    assert "MSG culoss.jax: the XLA FFI handler libculoss_jax.so is not installed" in r.stdout, \
        r.stderr
    assert "pip install ./bindings/python" in r.stdout


def test_culoss_jax_attribute():
    assert culoss.jax is cj and os.path.isfile(cj.handler_path())


def test_training_example_runs():
    script = os.path.join(REPO, "examples", "jax_train.py")
    r = subprocess.run([sys.executable, script, "--steps", "40"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    losses = [float(line.split()[3]) for line in r.stdout.splitlines()
              if line.startswith("step ")]
    assert len(losses) >= 2 and losses[-1] < losses[0], r.stdout


# ----------------------------------------------------------------------------- CUDA

@needs_cuda
@pytest.mark.parametrize("loss", [culoss.Dice(), culoss.CrossEntropy(reduction="none"),
                                  culoss.LovaszSoftmax(),
                                  culoss.Dice(check_targets=False) + culoss.Focal(
                                      activation="softmax", check_targets=False)], ids=repr)
def test_cuda_matches_cpu(loss, rng):
    x, t, _ = problem("CrossEntropy", {}, rng, shape=(2, 3, 16, 16))
    gpu = _gpus()[0]
    f = jax.jit(jax.value_and_grad(lambda a, b: cj.function(loss)(a, b).sum()))
    v, g = f(jax.device_put(x, gpu), jax.device_put(t, gpu))
    assert g.devices() == {gpu}
    ref_v, ref_g = loss(x, t)
    np.testing.assert_allclose(np.asarray(v), np.sum(ref_v), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(g), ref_g, rtol=1e-4, atol=1e-7)


@needs_cuda
def test_cuda_invalid_target_and_unchecked_target(rng):
    x, t, _ = problem("CrossEntropy", {}, rng, shape=(2, 3, 16, 16))
    t[0, 1, 2] = 9
    gpu = _gpus()[0]
    xg, tg = jax.device_put(x, gpu), jax.device_put(t, gpu)
    with pytest.raises(jax.errors.JaxRuntimeError, match="CULOSS_ERROR_INVALID_TARGET"):
        np.asarray(jax.jit(cj.function(culoss.CrossEntropy()))(xg, tg))
    f = jax.jit(jax.grad(cj.function(culoss.CrossEntropy(check_targets=False))))
    assert "culoss_compute_graph" in f.lower(xg, tg).as_text()
    for _ in range(3):  # CUDA-graph compatible target: runs repeatedly without synchronising
        g = f(xg, tg)
    assert np.isfinite(np.asarray(g)).all()
