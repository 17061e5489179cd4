"""nn.utils.prune against torch.nn.utils.prune: the same masks on the same weights, the same
keys in the state_dict, the same training with the pruned weights held at zero."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import DEVICES, requires_torch, torch

import minigrad as mg
from minigrad import nn
from minigrad.nn.utils import prune


def _pair(make_ours, make_theirs, seed=0):
    """A minigrad layer and a torch layer with the same (random, tie-free) weights."""
    t = torch()
    t.manual_seed(seed)
    theirs = make_theirs(t.nn)
    ours = make_ours(nn)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def _tprune():
    torch()
    import torch.nn.utils.prune as tprune

    return tprune


def _same_masks(ours, theirs, names=("weight",)):
    for name in names:
        np.testing.assert_array_equal(getattr(ours, name + "_mask").numpy(),
                                      getattr(theirs, name + "_mask").detach().numpy(),
                                      err_msg=name)


LAYERS = [
    (lambda n: n.Linear(7, 5), "weight"),
    (lambda n: n.Conv2d(3, 6, 3), "weight"),
    (lambda n: n.Conv2d(3, 6, 3), "bias"),
]


@requires_torch
@pytest.mark.parametrize("make, name", LAYERS)
@pytest.mark.parametrize("amount", [0.0, 0.3, 0.5, 1.0, 4])
def test_l1_unstructured_masks_and_keys_as_torch(make, name, amount):
    ours, theirs = _pair(make, make)
    prune.l1_unstructured(ours, name, amount=amount)
    _tprune().l1_unstructured(theirs, name, amount=amount)
    _same_masks(ours, theirs, (name,))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert prune.is_pruned(ours) and not isinstance(getattr(ours, name), nn.Parameter)


@requires_torch
@pytest.mark.parametrize("n", [1, 2, float("inf"), float("-inf"), 3])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_ln_structured_masks_as_torch(n, dim):
    make = LAYERS[1][0]
    ours, theirs = _pair(make, make, seed=1)
    prune.ln_structured(ours, "weight", amount=0.5, n=n, dim=dim)
    _tprune().ln_structured(theirs, "weight", amount=0.5, n=n, dim=dim)
    _same_masks(ours, theirs)


@requires_torch
def test_pruning_stacks_as_torchs_container_each_method_among_what_is_left():
    make = LAYERS[1][0]
    ours, theirs = _pair(make, make, seed=2)
    steps = [("l1_unstructured", dict(amount=0.3)),
             ("ln_structured", dict(amount=2, n=1, dim=0)),
             ("l1_unstructured", dict(amount=0.5)),
             ("ln_structured", dict(amount=0.34, n=2, dim=1)),
             ("identity", {})]
    for step, kwargs in steps:
        getattr(prune, step)(ours, "weight", **kwargs)
        getattr(_tprune(), step)(theirs, "weight", **kwargs)
        _same_masks(ours, theirs)
    hook = next(iter(ours._forward_pre_hooks.values()))
    assert isinstance(hook, prune.PruningContainer) and len(hook) == len(steps)
    assert [type(m).__name__ for m in hook] == ["L1Unstructured", "LnStructured",
                                                 "L1Unstructured", "LnStructured", "Identity"]


@requires_torch
def test_global_unstructured_ranks_all_layers_together_as_torch():
    def make(n):
        return n.Sequential(n.Conv2d(1, 4, 3), n.ReLU(), n.Flatten(), n.Linear(4 * 6 * 6, 10),
                            n.ReLU(), n.Linear(10, 3))

    ours, theirs = _pair(make, make, seed=3)
    prune.l1_unstructured(ours[5], "weight", amount=0.2)  # one already pruned: kept zeros
    _tprune().l1_unstructured(theirs[5], "weight", amount=0.2)

    def params(m):
        return [(m[0], "weight"), (m[3], "weight"), (m[5], "weight"), (m[3], "bias")]

    prune.global_unstructured(params(ours), pruning_method=prune.L1Unstructured, amount=0.8)
    _tprune().global_unstructured(params(theirs), pruning_method=_tprune().L1Unstructured,
                                  amount=0.8)
    for i in (0, 3, 5):
        _same_masks(ours[i], theirs[i])
    _same_masks(ours[3], theirs[3], ("bias",))
    shares = [1 - ours[i].weight_mask.numpy().mean() for i in (0, 3, 5)]
    assert len(set(np.round(shares, 3))) > 1  # layers lose different shares
    # importance scores: rank by something else than |w|
    ours2, theirs2 = _pair(make, make, seed=4)
    scores = np.random.default_rng(0).random((10, 144)).astype(np.float32)
    prune.global_unstructured([(ours2[3], "weight")], prune.L1Unstructured,
                              importance_scores={(ours2[3], "weight"): mg.tensor(scores)},
                              amount=0.5)
    _tprune().global_unstructured([(theirs2[3], "weight")], _tprune().L1Unstructured,
                                  importance_scores={(theirs2[3], "weight"):
                                                     torch().tensor(scores)}, amount=0.5)
    _same_masks(ours2[3], theirs2[3])


@requires_torch
def test_a_pruned_model_trains_as_torchs_and_its_pruned_weights_stay_zero():
    t = torch()

    def make(n):
        return n.Sequential(n.Linear(6, 8), n.Tanh(), n.Linear(8, 2))

    ours, theirs = _pair(make, make, seed=5)
    ours, theirs = ours.double(), theirs.double()
    for model, p in ((ours, prune), (theirs, _tprune())):
        p.l1_unstructured(model[0], "weight", amount=0.5)
        p.ln_structured(model[2], "weight", amount=1, n=2, dim=1)
    opt_ours = mg.optim.SGD(ours.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    opt_theirs = t.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    rng = np.random.default_rng(6)
    for _ in range(5):
        x, y = rng.standard_normal((16, 6)), rng.standard_normal((16, 2))
        for model, opt, lib in ((ours, opt_ours, mg), (theirs, opt_theirs, t)):
            opt.zero_grad()
            ((model(lib.tensor(x)) - lib.tensor(y)) ** 2).mean().backward()
            opt.step()
    for (name, p), (tname, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-10, atol=1e-12)
    out = ours(mg.tensor(rng.standard_normal((3, 6))))  # the hook recomputes weight
    assert (ours[0].weight.numpy()[ours[0].weight_mask.numpy() == 0] == 0).all()
    assert out.shape == (3, 2)


@requires_torch
def test_a_pruned_torch_models_state_dict_loads_and_remove_makes_it_permanent():
    t = torch()

    def make(n):
        return n.Sequential(n.Conv2d(2, 4, 3), n.ReLU(), n.Flatten(), n.Linear(4 * 4 * 4, 3))

    t.manual_seed(7)
    theirs = make(t.nn)
    _tprune().l1_unstructured(theirs[0], "weight", amount=0.6)
    _tprune().random_structured(theirs[3], "weight", amount=0.5, dim=0)
    ours = make(nn)
    prune.identity(ours[0], "weight")  # the same keys, so torch's state_dict loads
    prune.identity(ours[3], "weight")
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(8).standard_normal((2, 2, 6, 6)).astype(np.float32)
    expected = theirs(t.tensor(x)).detach().numpy()
    np.testing.assert_allclose(ours(mg.tensor(x)).numpy(), expected, atol=1e-5)
    for model, p in ((ours, prune), (theirs, _tprune())):
        p.remove(model[0], "weight")
        p.remove(model[3], "weight")
    assert list(ours.state_dict()) == list(theirs.state_dict())  # bias, weight: torch's order
    assert isinstance(ours[0].weight, nn.Parameter) and not prune.is_pruned(ours)
    assert not ours[0]._forward_pre_hooks
    np.testing.assert_allclose(ours(mg.tensor(x)).numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(ours[0].weight.numpy() == 0,
                                  theirs[0].weight.detach().numpy() == 0)


def test_random_pruning_prunes_the_amount_among_what_is_left_reproducibly():
    mg.manual_seed(0)
    layer = nn.Conv2d(4, 10, 3)
    prune.random_unstructured(layer, "weight", amount=0.25)
    mask = layer.weight_mask.numpy()
    assert mask.sum() == mask.size - round(0.25 * mask.size)
    prune.random_structured(layer, "weight", amount=3, dim=0)
    kept = layer.weight_mask.numpy().reshape(10, -1)
    assert (kept.sum(1) == 0).sum() == 3  # three whole output channels
    assert (layer.weight_mask.numpy() <= mask).all()  # nothing pruned comes back
    prune.random_unstructured(layer, "weight", amount=0.5)
    left = int(kept.sum())
    assert layer.weight_mask.numpy().sum() == left - round(0.5 * left)
    mg.manual_seed(0)
    again = nn.Conv2d(4, 10, 3)
    prune.random_unstructured(again, "weight", amount=0.25)
    np.testing.assert_array_equal(again.weight_mask.numpy(), mask)


@pytest.mark.parametrize("device", DEVICES)
def test_pruning_on_each_device_and_custom_masks(device):
    layer = nn.Linear(4, 3).to(device)
    mask = np.array([[1, 0, 1, 1], [0, 0, 1, 1], [1, 1, 1, 0]], dtype=np.float32)
    prune.custom_from_mask(layer, "weight", mask=mask)
    assert str(layer.weight_mask.device) == str(layer.weight_orig.device)
    np.testing.assert_array_equal(layer.weight.numpy(), layer.weight_orig.numpy() * mask)
    prune.l1_unstructured(layer, "weight", amount=2)
    assert layer.weight_mask.numpy().sum() == mask.sum() - 2
    layer(mg.randn(2, 4, device=device)).sum().backward()
    assert (layer.weight_orig.grad.numpy()[layer.weight_mask.numpy() == 0] == 0).all()


def test_pruning_errors_say_what_is_wrong():
    layer = nn.Linear(4, 3)
    with pytest.raises(ValueError, match=r"amount=1.5 should either be a float in the range"):
        prune.l1_unstructured(layer, "weight", amount=1.5)
    with pytest.raises(ValueError, match=r"amount=-1 should either be"):
        prune.l1_unstructured(layer, "weight", amount=-1)
    with pytest.raises(TypeError, match="Invalid type for amount"):
        prune.l1_unstructured(layer, "weight", amount="half")
    with pytest.raises(ValueError, match=r"amount=13 should be smaller than the number of "
                                         r"parameters to prune=12"):
        prune.l1_unstructured(layer, "weight", amount=13)
    assert isinstance(layer.weight, nn.Parameter) and not prune.is_pruned(layer)  # untouched
    assert list(layer.state_dict()) == ["weight", "bias"]
    with pytest.raises(AttributeError, match="Linear has no parameter 'kernel'"):
        prune.l1_unstructured(layer, "kernel", amount=0.5)
    with pytest.raises(ValueError, match="has to be pruned before pruning can be removed"):
        prune.remove(layer, "weight")
    with pytest.raises(TypeError, match='Only "unstructured" PRUNING_TYPE'):
        prune.global_unstructured([(layer, "weight")], prune.LnStructured, amount=0.5, n=2,
                                  dim=0)
    with pytest.raises(ValueError, match="importance_scores of shape"):
        prune.l1_unstructured(layer, "weight", amount=0.5, importance_scores=mg.ones(3))
    with pytest.raises(IndexError, match="dim 2 is out of range"):
        prune.ln_structured(layer, "weight", amount=1, n=2, dim=2)
    with pytest.raises(ValueError, match="custom_from_mask: the mask has shape"):
        prune.custom_from_mask(layer, "weight", mask=np.ones((4, 3)))
    assert list(layer.state_dict()) == ["weight", "bias"] and not prune.is_pruned(layer)
