"""CPU threads: culoss.set_num_threads / get_num_threads, and the culoss.torch modules running
on PyTorch's thread count. Every count gives bitwise the same results."""

import numpy as np
import pytest

from conftest import optional_import

import culoss

torch = optional_import("torch")
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

# Several chunks of work per pass (and per image).
SHAPE = (2, 4, 96, 96)


@pytest.fixture(autouse=True)
def default_threads_after():
    yield
    culoss.set_num_threads(0)


def inputs(shape=SHAPE, seed=7):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 2.0, size=shape)
    labels = rng.integers(0, shape[1], size=(shape[0],) + shape[2:])
    return x, labels


def test_set_and_get():
    assert culoss.get_num_threads() >= 1
    for n in (1, 3, 16):
        culoss.set_num_threads(n)
        assert culoss.get_num_threads() == n
    culoss.set_num_threads(0)
    assert culoss.get_num_threads() >= 1


@pytest.mark.parametrize("n", [-1, -(2**40), 1025, 2**40])
def test_refused_counts(n):
    culoss.set_num_threads(2)
    with pytest.raises(culoss.InvalidArgumentError, match="number of threads is .*expected 1 to "
                       "1024, or 0 for the default") as info:
        culoss.set_num_threads(n)
    assert info.value.function == "culoss_set_num_threads"
    assert culoss.get_num_threads() == 2  # left as it was


@pytest.mark.parametrize("n", [1.0, "2", None, True])
def test_count_must_be_an_int(n):
    with pytest.raises(TypeError, match="n must be an int"):
        culoss.set_num_threads(n)


@pytest.mark.parametrize("loss", [culoss.Dice(), culoss.CrossEntropy(),
                                  culoss.Dice() + culoss.CrossEntropy(),
                                  culoss.LovaszSoftmax()],
                         ids=["dice", "ce", "dice+ce", "lovasz_softmax"])
def test_every_count_gives_the_same_bits(loss):
    x, labels = inputs()
    results = []
    for n in (1, 2, 16):
        culoss.set_num_threads(n)
        value, grad = loss(x, labels)
        results.append((np.asarray(value).tobytes(), np.asarray(grad).tobytes()))
    assert results[1] == results[0] and results[2] == results[0]



@needs_torch
def test_torch_modules_use_torch_threads():
    import culoss.torch as ct
    before = torch.get_num_threads()
    x, labels = inputs()
    x = torch.from_numpy(x).float().requires_grad_(True)
    t = torch.from_numpy(labels)
    module = ct.DiceLoss()
    grads = []
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            culoss.set_num_threads(7)
            x.grad = None
            module(x, t).backward()
            assert culoss.get_num_threads() == n == torch.get_num_threads()
            grads.append(x.grad.clone())
    finally:
        torch.set_num_threads(before)
    assert torch.equal(grads[0], grads[1])

