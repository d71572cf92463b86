"""culoss.torch: nn.Modules with autograd, gradcheck for every kind, sums, AMP dtypes,
torch.compile. Skipped when PyTorch is not installed; CUDA cases run when a GPU is there."""

import copy
import pickle

import numpy as np
import pytest

from conftest import optional_import

torch = optional_import("torch")
if torch is None:
    pytest.skip("PyTorch is not installed", allow_module_level=True)

import culoss  # noqa: E402
import culoss.torch as ct  # noqa: E402
from cases import CASES, case_id, make_inputs  # noqa: E402

CUDA = torch.cuda.is_available()
cuda_only = pytest.mark.skipif(not CUDA, reason="no CUDA device")

MODULES = {"Dice": ct.DiceLoss, "Jaccard": ct.JaccardLoss, "Tversky": ct.TverskyLoss,
           "FocalTversky": ct.FocalTverskyLoss, "GeneralizedDice": ct.GeneralizedDiceLoss,
           "BCE": ct.BCELoss, "CrossEntropy": ct.CrossEntropyLoss, "Focal": ct.FocalLoss,
           "Combo": ct.ComboLoss, "MarginalCrossEntropy": ct.MarginalCrossEntropyLoss,
           "LovaszHinge": ct.LovaszHingeLoss, "LovaszSoftmax": ct.LovaszSoftmaxLoss,
           "MCC": ct.MCCLoss, "TopKCrossEntropy": ct.TopKCrossEntropyLoss,
           "HausdorffDT": ct.HausdorffDTLoss, "Boundary": ct.BoundaryLoss,
           "ClDice": ct.ClDiceLoss}


def tensors(kind, params, rng, shape=(2, 3, 3, 4), dtype=torch.float64, device="cpu"):
    x, t = make_inputs(kind, params, rng, shape=shape, ignore="ignore_index" in params)
    x = torch.from_numpy(x).to(device=device, dtype=dtype).requires_grad_(True)
    t = torch.from_numpy(t).to(device)
    return x, t


def test_every_kind_has_a_module():
    assert set(MODULES) == set(culoss._loss.KIND_CLASSES)
    for kind, cls in MODULES.items():
        assert issubclass(cls, torch.nn.Module)
        assert isinstance(cls().loss, getattr(culoss, kind))


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_gradcheck_every_kind(case, rng):
    kind, params = case
    x, t = tensors(kind, params, rng)
    module = MODULES[kind](**params)
    assert torch.autograd.gradcheck(lambda a: module(a, t), (x,), eps=1e-6, atol=1e-5,
                                    rtol=1e-3)


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_module_matches_the_core_call(case, rng):
    kind, params = case
    x, t = tensors(kind, params, rng)
    module = MODULES[kind](**params)
    value = module(x, t)
    assert value.requires_grad and value.dtype == torch.float64
    w = torch.rand_like(value)  # a reduction="none" value takes any grad_output
    (value * w).sum().backward()
    ref_value, ref_grad = getattr(culoss, kind)(**params)(x.detach().numpy(), t.numpy())
    if module._softmax_axis is None:  # the same single culoss call
        np.testing.assert_array_equal(value.detach().numpy(), ref_value)
    else:
        np.testing.assert_allclose(value.detach().numpy(), ref_value, rtol=1e-12, atol=1e-14)
    if value.dim() == 0:
        np.testing.assert_allclose(x.grad.numpy(), w.item() * ref_grad, rtol=1e-12, atol=1e-16)


def test_pixel_weight_and_pure_pytorch_reference(rng):
    x = torch.randn(2, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 4, (2, 5, 6))
    pw = torch.rand(2, 5, 6, dtype=torch.float32)
    loss = ct.CrossEntropyLoss(class_weights=[1.0, 2.0, 0.5, 1.0])(x, t, pw)
    loss.backward()
    x2 = x.detach().clone().requires_grad_(True)
    w = torch.tensor([1.0, 2.0, 0.5, 1.0], dtype=torch.float64)
    per = torch.nn.functional.cross_entropy(x2, t, weight=w, reduction="none") * pw
    ref = per.sum() / w[t].sum()  # PyTorch's divisor; the pixel weight is not part of it
    ref.backward()
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(x.grad, x2.grad)


def test_sum_module(rng):
    x, t = tensors("BCE", {}, rng)
    both = ct.LossModule(culoss.Dice(activation="sigmoid") + 0.5 * culoss.BCE())
    assert torch.autograd.gradcheck(lambda a: both(a, t), (x,), eps=1e-6, atol=1e-5)
    v = both(x, t)
    ref = ct.DiceLoss(activation="sigmoid")(x, t) + 0.5 * ct.BCELoss()(x, t)
    torch.testing.assert_close(v, ref)


def test_repeated_backward_and_scaled_output(rng):
    """loss.backward() hands the saved gradient on as it is (a unit grad_output): a graph kept
    for more backward calls still accumulates the same gradient each time, and a scaled or
    non-leaf use still gets it scaled."""
    x = torch.tensor(rng.standard_normal((2, 3, 5, 4)), dtype=torch.float32, requires_grad=True)
    t = torch.tensor(rng.integers(0, 3, (2, 5, 4)))
    for module in (ct.DiceLoss(), ct.CrossEntropyLoss()):
        x.grad = None
        loss = module(x, t)
        loss.backward(retain_graph=True)
        g1 = x.grad.clone()
        loss.backward(retain_graph=True)
        assert torch.equal(x.grad, 2 * g1)
        loss.backward()
        assert torch.equal(x.grad, 3 * g1)
        x.grad = None
        (module(x, t) * 2.5).backward()
        torch.testing.assert_close(x.grad, 2.5 * g1)
        x.grad = None
        (module(x * 1.0, t)).backward()  # through a non-leaf
        assert torch.equal(x.grad, g1)


def test_no_grad_and_inputs_without_grad(rng):
    x, t = tensors("Dice", {}, rng)
    module = ct.DiceLoss()
    with torch.no_grad():
        v = module(x, t)
    assert not v.requires_grad
    v2 = module(x.detach(), t)
    assert not v2.requires_grad
    torch.testing.assert_close(v, v2)


def test_soft_targets_requiring_grad_get_none(rng):
    x = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    t = torch.rand(2, 3, 8, dtype=torch.float64, requires_grad=True)
    ct.BCELoss()(x, t).backward()
    assert x.grad is not None and t.grad is None


def test_non_contiguous_input(rng):
    base = torch.randn(2, 6, 5, 3, dtype=torch.float64)
    x = base.permute(0, 3, 1, 2).requires_grad_(True)  # (2, 3, 6, 5), channels last in memory
    t = torch.randint(0, 3, (2, 6, 5))
    v = ct.DiceLoss()(x, t)
    v.backward()
    x2 = x.detach().contiguous().requires_grad_(True)
    v2 = ct.DiceLoss()(x2, t)
    v2.backward()
    torch.testing.assert_close(v, v2)
    torch.testing.assert_close(x.grad, x2.grad)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_mixed_precision_inputs(dtype, rng):
    x64, t = tensors("CrossEntropy", {}, rng, shape=(4, 5, 8, 8))
    x = x64.detach().to(dtype).requires_grad_(True)
    v = ct.CrossEntropyLoss()(x, t)
    assert v.dtype == torch.float32
    (v * 1024.0).backward()
    assert x.grad.dtype == dtype
    ref = ct.CrossEntropyLoss()(x.detach().double().requires_grad_(True), t)
    torch.testing.assert_close(v.double(), ref, rtol=1e-2, atol=1e-3)
    # the saved gradient: float32 for float16 (no underflow before the loss scale), bfloat16
    # for bfloat16 (float32's range), float32 for float32
    _, saved = ct._forward_impl(x.detach(), t, None, culoss._loss.spec_json(culoss.CrossEntropy()),
                                True)
    assert saved.dtype == (torch.float32 if dtype == torch.float16 else dtype)


@pytest.mark.parametrize("loss_name", ["CrossEntropy", "Dice"])
def test_bfloat16_gradient_is_the_float32_gradient_rounded(loss_name, rng):
    x64, t = tensors(loss_name, {}, rng, shape=(2, 4, 9, 11))
    x = x64.detach().to(torch.bfloat16)
    base = getattr(culoss, loss_name)()
    _, g32 = base(x, t, grad_dtype="float32")
    module = getattr(ct, loss_name + "Loss")()
    xr = x.clone().requires_grad_(True)
    module(xr, t).backward()  # grad_output 1: the saved bfloat16 gradient as it is
    assert torch.equal(xr.grad, g32.to(torch.bfloat16))
    xs = x.clone().requires_grad_(True)
    (module(xs, t) * 3.7).backward()  # scaled in float32, rounded once more
    torch.testing.assert_close(xs.grad.float(), (g32 * 3.7).to(torch.bfloat16).float(),
                               rtol=2 ** -7, atol=0)


def test_autocast_cpu(rng):
    model = torch.nn.Conv2d(3, 4, 1)
    x = torch.randn(2, 3, 8, 8)
    t = torch.randint(0, 4, (2, 8, 8))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x.float())
        assert logits.dtype == torch.bfloat16
        loss = ct.DiceLoss()(logits, t) + ct.CrossEntropyLoss()(logits, t)
    loss.backward()
    assert model.weight.grad is not None and torch.isfinite(model.weight.grad).all()


def test_modules_copy_and_pickle(rng):
    x, t = tensors("Tversky", {"alpha": 0.3, "beta": 0.7}, rng)
    m = ct.TverskyLoss(alpha=0.3, beta=0.7)
    for m2 in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        torch.testing.assert_close(m2(x, t), m(x, t))
    assert m.state_dict() == {} and "alpha=0.3" in repr(m)


def test_bad_keyword_fails_at_construction():
    with pytest.raises(TypeError):
        ct.DiceLoss(gamma=2.0)
    with pytest.raises(ValueError):
        ct.FocalLoss(activation="tanh")
    with pytest.raises(TypeError):
        ct.LossModule("dice")


def _compile_and_check(module, x, t, backend):
    graphs = []

    def recording(gm, example_inputs):
        graphs.append(gm)
        if backend == "record":
            return gm.forward
        return torch._dynamo.backends.registry.lookup_backend(backend)(gm, example_inputs)

    torch._dynamo.reset()
    compiled = torch.compile(module, backend=recording, fullgraph=True)
    v = compiled(x, t)
    v.sum().backward()
    g = x.grad.clone()
    x.grad = None
    v_ref = module(x, t)
    v_ref.sum().backward()
    torch.testing.assert_close(v, v_ref)
    torch.testing.assert_close(g, x.grad)
    x.grad = None
    targets = [str(n.target) for gm in graphs for n in gm.graph.nodes if n.op == "call_function"]
    assert any("culoss.compute" in s for s in targets), targets  # one opaque node


@pytest.mark.skipif(not ct.HAVE_CUSTOM_OP, reason="torch.library.custom_op needs PyTorch >= 2.4")
@pytest.mark.parametrize("backend", ["record", "aot_eager", "inductor"])
def test_torch_compile(backend, rng):
    x, t = tensors("Dice", {}, rng)
    _compile_and_check(ct.DiceLoss(include_background=False), x, t, backend)
    _compile_and_check(ct.LossModule(culoss.Dice() + 0.5 * culoss.CrossEntropy()), x, t, backend)
    x2, t2 = tensors("Dice", {"reduction": "none"}, rng)
    _compile_and_check(ct.DiceLoss(reduction="none"), x2, t2, backend)


# ----------------------------------------------------------------------------- CUDA

@cuda_only
@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_cuda_matches_cpu(case, rng):
    kind, params = case
    x, t = tensors(kind, params, rng, shape=(2, 3, 16, 16))
    xc = x.detach().cuda().requires_grad_(True)
    module = MODULES[kind](**params)
    v = module(x, t)
    vc = module(xc, t.cuda())
    assert vc.device.type == "cuda"
    torch.testing.assert_close(vc.cpu(), v, rtol=1e-9, atol=1e-12)
    w = torch.rand_like(v)
    (v * w).sum().backward()
    (vc * w.cuda()).sum().backward()
    torch.testing.assert_close(xc.grad.cpu(), x.grad, rtol=1e-7, atol=1e-12)


@cuda_only
def test_cuda_side_stream_and_amp(rng):
    x = torch.randn(4, 5, 64, 64, device="cuda")
    t = torch.randint(0, 5, (4, 64, 64), device="cuda")
    ref = ct.DiceLoss()(x, t)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            xs = (x * 1.0).requires_grad_(True)  # produced on the side stream
            v = ct.DiceLoss()(xs, t)
            v.backward()
    torch.cuda.current_stream().wait_stream(s)
    torch.testing.assert_close(v, ref)
    model = torch.nn.Conv2d(5, 5, 1).cuda()
    with torch.autocast("cuda", dtype=torch.float16):
        logits = model(x)
        assert logits.dtype == torch.float16
        loss = ct.DiceLoss()(logits, t) + ct.CrossEntropyLoss()(logits, t)
    scaler = torch.amp.GradScaler("cuda")
    scaler.scale(loss).backward()
    assert torch.isfinite(model.weight.grad).all()


@cuda_only
def test_cuda_core_call_returns_cuda_tensors(rng):
    x = torch.randn(2, 3, 8, 8, device="cuda", dtype=torch.bfloat16)
    t = torch.randint(0, 3, (2, 8, 8), device="cuda", dtype=torch.uint8)
    value, grad = culoss.Dice()(x, t)
    assert value.device == x.device and grad.device == x.device
    assert value.dtype == torch.float32 and grad.dtype == torch.bfloat16
    v_cpu, g_cpu = culoss.Dice()(x.cpu().float(), t.cpu())
    torch.testing.assert_close(value.cpu(), v_cpu, rtol=1e-2, atol=1e-3)
