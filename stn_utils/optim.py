"""Muon for convolution filters, beside SGD for everything else.

Muon (Keller Jordan et al., 2024; airbench94_muon reaches airbench94's accuracy in 8
epochs instead of 9.9) replaces a weight matrix's momentum step by the nearest
*orthogonal* matrix, so that every direction of the layer moves by about the same
amount, whatever the gradient's scale. It suits the filters of convolutions, read as
matrices (out_channels, in_channels * kh * kw); biases, norm shifts and the last linear
layer keep SGD.

``torch.optim.Muon`` (torch 2.9 and later) takes 2-D weights only, scales each rate by
the matrix's shape and keeps no fixed norm, so the course writes its own small version for
4-D filters, with airbench's choices:

- Nesterov momentum on the raw gradient, then the orthogonalisation;
- the orthogonalisation is a few Newton-Schulz iterations (:func:`orthogonalize`),
  which give singular values near 1, not exactly 1;
- instead of weight decay, every step first rescales each filter bank to the norm
  ``sqrt(out_channels)``: with a batch norm after each convolution, the scale of the
  filters changes nothing but the step's relative size, which this keeps fixed.

Conventions: a parameter group marked ``"orthogonalize": True`` steps with Muon at its
``lr`` and ``momentum``; every other group is torch's SGD with Nesterov momentum.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["orthogonalize", "SGDMuon"]

# Quintic Newton-Schulz coefficients from Muon's published implementation: chosen to push
# small singular values up fast in few steps, at the price of leaving them in about
# [0.7, 1.2] rather than at exactly 1, which training does not mind.
_NEWTON_SCHULZ = (3.4445, -4.7750, 2.0315)


def orthogonalize(matrix: Tensor, *, steps: int = 3, dtype: torch.dtype = torch.float32) -> Tensor:
    """An approximately orthogonal matrix with the singular vectors of ``matrix``.

    The singular values that are not tiny against the largest one land in about [0.7, 1.2];
    much smaller ones grow by a factor of about 3.4 per step and may stay below that.

    Args:
        matrix: (M, N), any scale (the result does not depend on it).
        steps: Newton-Schulz iterations (3 is airbench's; more land closer to 1).
        dtype: to compute in: bfloat16 is fast on hardware that has it.

    Returns:
        (M, N) in ``dtype``.

    >>> q = orthogonalize(torch.randn(64, 576, generator=torch.Generator().manual_seed(0)), steps=5)
    >>> s = torch.linalg.svdvals(q)
    >>> bool(s.min() > 0.6 and s.max() < 1.3)
    True
    """
    if matrix.ndim != 2:
        raise ValueError(f"orthogonalize takes a matrix (M, N); got shape {tuple(matrix.shape)}. "
                         "Flatten a convolution's filters first: weight.flatten(1).")
    a, b, c = _NEWTON_SCHULZ
    x = matrix.to(dtype)
    wide = x.shape[0] <= x.shape[1]
    if not wide:  # iterate on the smaller Gram matrix
        x = x.T
    x = x / (x.norm() + 1e-7)  # the spectral norm is at most the Frobenius norm: now <= 1
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x if wide else x.T


class SGDMuon(torch.optim.SGD):
    """torch's SGD, except in the parameter groups marked ``"orthogonalize": True``, where
    each step is Muon's (see the module's docstring).

    Args:
        params: parameter groups, as for SGD; a group with ``"orthogonalize": True`` must
            hold tensors of 2 or more dimensions (the first one is the output) and gets no
            weight decay.
        lr, momentum, nesterov: SGD's defaults, for groups that set none.
        orthogonalize_dtype: the dtype of the Newton-Schulz iterations; float32 unless
            given (:func:`stn_utils.training.optimizer_for` passes bfloat16 when the run
            autocasts to it).
    """

    def __init__(self, params, lr: float, momentum: float, *, nesterov: bool = True,
                 orthogonalize_dtype: torch.dtype = torch.float32):
        super().__init__(params, lr=lr, momentum=momentum, nesterov=nesterov)
        self.orthogonalize_dtype = orthogonalize_dtype
        for group in self.param_groups:
            if not group.get("orthogonalize"):
                continue
            if group["weight_decay"]:
                raise ValueError("an orthogonalised group takes no weight_decay (its filters are rescaled to a "
                                 f"fixed norm instead); got {group['weight_decay']}. Set it to 0.")
            if any(p.ndim < 2 for p in group["params"]):
                raise ValueError("an orthogonalised group holds weight matrices or filters (2 or more dimensions); "
                                 "move biases and norm parameters to a group of their own.")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        held = [(group, p, p.grad) for group in self.param_groups if group.get("orthogonalize")
                for p in group["params"] if p.grad is not None]
        for _, p, _ in held:
            p.grad = None  # SGD's step skips a parameter without a gradient
        try:
            super().step()
        finally:
            for _, p, grad in held:
                p.grad = grad
        for group, p, grad in held:
            self._muon_step(p, grad, group)
        return loss

    def _muon_step(self, p: Tensor, grad: Tensor, group: dict) -> None:
        state = self.state[p]
        if "muon_buffer" not in state:
            state["muon_buffer"] = torch.zeros_like(grad)
        buffer, momentum = state["muon_buffer"], group["momentum"]
        buffer.mul_(momentum).add_(grad)
        update = grad.add(buffer, alpha=momentum) if group["nesterov"] else buffer
        p.mul_(math.sqrt(p.shape[0]) / p.norm().clamp(min=1e-12))
        direction = orthogonalize(update.flatten(1), dtype=self.orthogonalize_dtype)
        p.add_(direction.reshape(p.shape).to(p.dtype), alpha=-group["lr"])
