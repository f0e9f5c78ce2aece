"""Muon for convolution filters (stn_utils.optim) and how a recipe turns it on."""

import copy
import dataclasses

import pytest
import torch
from torch import nn

from stn_utils import recipes
from stn_utils.models import build_model
from stn_utils.optim import SGDMuon, orthogonalize
from stn_utils.training import optimizer_for


def test_orthogonalize_brings_every_singular_value_near_one_whatever_the_scale():
    g = torch.Generator().manual_seed(0)
    for shape in ((64, 216), (256, 2304), (300, 40)):  # wide, wide, tall
        matrix = torch.randn(shape, generator=g) * torch.logspace(-3, 0, shape[1])  # spread singular values
        unscaled = orthogonalize(matrix, steps=5)
        assert unscaled.shape == shape and unscaled.dtype == torch.float32
        assert torch.linalg.svdvals(unscaled).max() < 1.3
        for scale in (1e-4, 1e4):
            assert torch.allclose(orthogonalize(matrix * scale, steps=5), unscaled, atol=1e-4), (shape, scale)
        values = torch.linalg.svdvals(orthogonalize(torch.randn(shape, generator=g)))
        assert values.min() > 0.6 and values.max() < 1.3
        # the same directions: the result is the matrix's polar factor, up to the singular values' spread
        u, _, vh = torch.linalg.svd(matrix, full_matrices=False)
        polar = u @ vh
        assert torch.nn.functional.cosine_similarity(orthogonalize(matrix, steps=5).flatten(), polar.flatten(),
                                                     dim=0) > 0.8


def test_orthogonalize_refuses_what_is_not_a_matrix():
    with pytest.raises(ValueError, match=r"takes a matrix \(M, N\); got shape \(2, 3, 3, 3\).*flatten\(1\)"):
        orthogonalize(torch.ones(2, 3, 3, 3))


def two_group_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3, bias=False), nn.Flatten(), nn.Linear(4, 3))


def test_sgd_muon_steps_plain_groups_exactly_as_sgd_and_filters_by_muon():
    model = two_group_model()
    conv, linear = model[0], model[2]
    reference = copy.deepcopy(model)
    groups = [{"params": [conv.weight], "orthogonalize": True, "lr": 0.05, "momentum": 0.6, "weight_decay": 0.0},
              {"params": list(linear.parameters()), "weight_decay": 0.01}]
    optimizer = SGDMuon(groups, lr=0.1, momentum=0.9)
    sgd = torch.optim.SGD(reference[2].parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    x = torch.randn(8, 2, 3, 3, generator=torch.Generator().manual_seed(1))
    buffer = torch.zeros_like(conv.weight)
    for _ in range(3):
        for net in (model, reference):
            net.zero_grad()
            net(x).square().sum().backward()
        grad = conv.weight.grad.clone()
        expected = conv.weight.detach().clone()
        optimizer.step()
        sgd.step()
        assert all(torch.equal(a, b) for a, b in zip(linear.parameters(), reference[2].parameters()))
        # Muon by hand: Nesterov momentum, the filters rescaled to norm sqrt(4), an orthogonal step of 0.05
        buffer = buffer * 0.6 + grad
        expected *= 2 / expected.norm()
        expected -= 0.05 * orthogonalize((grad + 0.6 * buffer).flatten(1)).reshape(expected.shape)
        assert torch.allclose(conv.weight, expected, atol=1e-6)
        assert conv.weight.grad is not None  # the gradients are left in place
        reference[0].weight.data.copy_(conv.weight)  # keep the two models' inputs to the head alike


def test_sgd_muon_refuses_decay_or_biases_in_an_orthogonalised_group():
    model = two_group_model()
    with pytest.raises(ValueError, match="takes no weight_decay.*Set it to 0"):
        SGDMuon([{"params": [model[0].weight], "orthogonalize": True, "weight_decay": 0.1}], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="move biases and norm parameters to a group of their own"):
        SGDMuon([{"params": [model[2].bias], "orthogonalize": True}], lr=0.1, momentum=0.9)


def test_a_recipe_with_muon_lr_orthogonalises_the_body_filters_only():
    model = build_model("cifar_stn")
    optimizer = optimizer_for(model, dataclasses.replace(recipes.CIFAR10, muon_lr=0.12, muon_momentum=0.5))
    assert isinstance(optimizer, SGDMuon) and optimizer.orthogonalize_dtype in (torch.bfloat16, torch.float32)
    marked = [group for group in optimizer.param_groups if group.get("orthogonalize")]
    assert len(marked) == 1
    group = marked[0]
    body_filters = [p for p in model.body.parameters() if p.ndim == 4 and p.requires_grad]
    assert {id(p) for p in group["params"]} == {id(p) for p in body_filters} and len(body_filters) == 6
    assert (group["lr"], group["momentum"], group["weight_decay"], group["nesterov"]) == (0.12, 0.5, 0.0, True)
    transformer = {id(p) for p in model.stn.parameters()}
    assert not transformer & {id(p) for p in group["params"]}  # the localisation net keeps SGD at its scale
    assert all(not group.get("orthogonalize") for group in optimizer.param_groups
               if transformer & {id(p) for p in group["params"]})
    plain = optimizer_for(build_model("cifar_stn"), recipes.CIFAR10)
    assert type(plain) is torch.optim.SGD
    counted = sum(len(group["params"]) for group in optimizer.param_groups)
    assert counted == sum(len(group["params"]) for group in plain.param_groups)  # every parameter, once


def test_the_orthogonalisation_runs_in_bf16_only_where_the_run_autocasts_to_it():
    model = build_model("cifar_cnn")
    fp32 = optimizer_for(model, dataclasses.replace(recipes.CIFAR10, muon_lr=0.1, precision="fp32"))
    bf16 = optimizer_for(model, dataclasses.replace(recipes.CIFAR10, muon_lr=0.1, precision="bf16"))
    fp16 = optimizer_for(model, dataclasses.replace(recipes.CIFAR10, muon_lr=0.1, precision="fp16"))
    assert (fp32.orthogonalize_dtype, bf16.orthogonalize_dtype) == (torch.float32, torch.bfloat16)
    assert fp16.orthogonalize_dtype == torch.float32  # fp16's range is too narrow for the iterations


@pytest.mark.parametrize("changes, message", [
    (dict(muon_lr=-0.1), "Recipe.muon_lr must be None or a number >= 0"),
    (dict(muon_lr="fast"), "Recipe.muon_lr must be None or a number >= 0"),
    (dict(muon_lr=0.1, optimizer="adamw"), "Recipe.muon_lr must be None with optimizer='adamw'.*set optimizer='sgd'"),
    (dict(muon_momentum=1.0), r"Recipe.muon_momentum must be in \[0, 1\)"),
])
def test_recipe_refuses_bad_muon_settings(changes, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(recipes.CIFAR10, **changes)


def test_muon_fields_are_left_out_of_a_recipes_repr_until_set():
    assert "muon" not in repr(recipes.CIFAR10_8EPOCH)
    assert "muon_lr=0.1" in repr(dataclasses.replace(recipes.CIFAR10_8EPOCH, muon_lr=0.1))



def test_the_modules_examples_run():
    import doctest

    from stn_utils import optim
    result = doctest.testmod(optim)
    assert result.attempted >= 3 and result.failed == 0
