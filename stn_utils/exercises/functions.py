"""Checks for exercises in which the reader writes a function.

The notebook gives a stub and a check::

    def my_affine_grid(theta, size, align_corners):
        # your code here
        raise NotImplementedError

    ex.check_affine_grid(my_affine_grid);

and the notebook's check module calls :func:`check_function` with the package's
reference and a few seeded random :class:`Case` s. The verdict is one of

- ``Correct! `my_affine_grid` matches the reference on 4 random cases: shapes, values and
  gradients with respect to theta.``
- ``Not quite. <what differed: the shape, the values or a gradient; for which inputs; by
  how much and where; and a hint>``
- ``Not answered yet: `my_affine_grid` still raises NotImplementedError. ...`` (the stub
  as given; the check returns ``False`` and the notebook runs on).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from . import report

__all__ = ["Case", "Mistake", "check_function", "borrowed_name"]

_MAX_ERROR_TEXT = 300


def _describe_input(name: str, value) -> str:
    if isinstance(value, Tensor):
        return f"{name} of shape {tuple(value.shape)}"
    return f"{name}={value!r}"


@dataclass(frozen=True)
class Case:
    """One call on which the reader's function and the reference are compared.

    Args:
        inputs: the arguments by name, in the order of the function's parameters; both
            functions receive them positionally. Tensors are copied for every call, so a
            function that edits its inputs in place cannot spoil the comparison.
        label: how verdicts name this call; by default it is built from the inputs, e.g.
            ``"theta of shape (2, 2, 3), size=(3, 5), align_corners=False"``.
    """

    inputs: Mapping[str, Any]
    label: str = ""

    def describe(self) -> str:
        return self.label or ", ".join(_describe_input(k, v) for k, v in self.inputs.items())


@dataclass(frozen=True)
class Mistake:
    """A known wrong version of the function, and what to tell a reader who wrote it.

    When the reader's output equals ``function``'s output on a failing case (same shape
    and values; and the same gradients, when only the gradients differ from the
    reference), ``hint`` is printed after the description of the difference.

    Args:
        function: called like the reference, with the same inputs.
        hint: what went wrong and how to fix it, as a sentence.
    """

    function: Callable[..., Tensor]
    hint: str


def _call(function: Callable, case: Case, grad: Sequence[str]) -> Tuple[Any, Dict[str, Tensor]]:
    """``function(*inputs)`` on fresh copies; returns the output and the copies of ``grad``'s inputs."""
    copies = {}
    for key, value in case.inputs.items():
        if isinstance(value, Tensor):
            value = value.detach().clone()
            if key in grad:
                value.requires_grad_(True)
        copies[key] = value
    with torch.enable_grad():
        output = function(*copies.values())
    return output, {key: copies[key] for key in grad}


def _gradients(output: Tensor, inputs: Dict[str, Tensor], upstream: Tensor) -> Dict[str, Optional[Tensor]]:
    """d(sum(output * upstream)) / d(input) for each input; ``None`` where autograd finds no path."""
    if not output.requires_grad:
        return {key: None for key in inputs}
    grads = torch.autograd.grad(output, list(inputs.values()), upstream.to(output.dtype), allow_unused=True)
    return dict(zip(inputs, grads))


def _differences(got: Tensor, expected: Tensor, atol: float, rtol: float):
    """``None`` when ``got`` matches ``expected`` within tolerance, else (count, largest, index)."""
    got, expected = got.detach().double().cpu(), expected.detach().double().cpu()
    diff = (got - expected).abs()
    bad = ~(diff <= atol + rtol * expected.abs())  # NaN counts as bad
    if not bad.any():
        return None
    ranked = torch.where(torch.isnan(diff), torch.full_like(diff, math.inf), diff)
    flat = int(ranked.reshape(-1).argmax())
    index = tuple(int(i) for i in np.unravel_index(flat, tuple(diff.shape)))
    return int(bad.sum()), float(ranked.reshape(-1)[flat]), index


def _where(case: Case, entry: str, index, describe) -> str:
    text = f"at index {index}"
    if describe is not None:
        try:
            words = describe(case, entry, index)
        except Exception:  # a description must never hide the verdict
            words = ""
        if words:
            text += f" ({words})"
    return text


def _same_result(function, case, grad, got, got_grads, upstream, atol, rtol, grad_atol, grad_rtol) -> bool:
    """Whether ``function`` gives the reader's output (and, when ``got_grads`` is given, gradients)."""
    try:
        output, inputs = _call(function, case, grad if got_grads else ())
        if not isinstance(output, Tensor) or output.shape != got.shape:
            return False
        if _differences(got, output, atol, rtol) is not None:
            return False
        if got_grads:
            grads = _gradients(output, inputs, upstream)
            for key, mine in got_grads.items():
                theirs = grads[key]
                if (mine is None) != (theirs is None):
                    return False
                if mine is not None and _differences(mine, theirs, grad_atol, grad_rtol) is not None:
                    return False
        return True
    except Exception:  # a mistake that cannot run on this case simply does not match
        return False


def _mistake_hint(mistakes, case, grad, got, got_grads, upstream, tolerances) -> str:
    for mistake in mistakes:
        if _same_result(mistake.function, case, grad, got, got_grads, upstream, *tolerances):
            return " " + mistake.hint
    return ""


def _shape(value) -> str:
    return str(tuple(value.shape))


class _Verdict(Exception):
    """Stops :func:`check_function` at the first difference; ``str()`` is the hint to print.

    ``not_answered`` marks the untouched stub, reported as "Not answered yet"."""

    def __init__(self, text: str, *, not_answered: bool = False):
        super().__init__(text)
        self.not_answered = not_answered


@dataclass(frozen=True)
class _Comparison:
    """The reader's function next to the reference, with everything :func:`check_function`
    was told; :meth:`compare` compares one call and raises :class:`_Verdict` on a difference."""

    answer: Callable
    reference: Callable[..., Tensor]
    grad: Sequence[str]
    mistakes: Sequence[Mistake]
    describe: Optional[Callable[[Case, str, tuple], str]]
    tail: str  # the default hint, with its leading space, or ""
    tolerances: Tuple[float, float, float, float]  # atol, rtol, grad_atol, grad_rtol

    @property
    def name(self) -> str:
        label = getattr(self.answer, "__name__", "")
        return f"`{label}`" if label and label != "<lambda>" else "your function"

    @property
    def subject(self) -> str:
        """:attr:`name`, capitalised to start a sentence."""
        return self.name[0].upper() + self.name[1:]

    def compare(self, number: int, case: Case) -> None:
        """Compare the two functions on ``case``, the ``number``-th: output, shape, values, gradients."""
        expected, expected_inputs = _call(self.reference, case, self.grad)
        got, got_inputs = self._run_answer(case, expected)
        upstream = torch.randn(expected.shape, generator=torch.Generator().manual_seed(number),
                               dtype=torch.float64)
        self._compare_values(case, got, expected, upstream)
        if self.grad:
            self._compare_gradients(case, got, got_inputs, expected, expected_inputs, upstream)

    def _run_answer(self, case: Case, expected: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        """The reader's output on ``case`` and its copies of the inputs; a failure to run, or
        anything but a tensor, is the verdict."""
        where = case.describe()
        try:
            got, got_inputs = _call(self.answer, case, self.grad)
        except NotImplementedError:
            raise _Verdict(f"{self.name} still raises NotImplementedError. Replace `# your code here` and "
                           "the `raise` line with your code, then run the cell again.", not_answered=True) from None
        except Exception as error:  # the reader's code may fail in any way: say how, and where
            message = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise _Verdict(f"{self.subject} raised {type(error).__name__} for {where}: "
                           f"{message[:_MAX_ERROR_TEXT]}") from None
        if not isinstance(got, Tensor):
            raise _Verdict(f"{self.subject} returned a {type(got).__name__} for {where}; return a tensor "
                           f"of shape {_shape(expected)}.")
        return got, got_inputs

    def _hint(self, case: Case, grad: Sequence[str], got: Tensor, got_grads, upstream: Tensor) -> str:
        """The hint of the first matching mistake, else the default hint."""
        return _mistake_hint(self.mistakes, case, grad, got, got_grads, upstream, self.tolerances) or self.tail

    def _compare_values(self, case: Case, got: Tensor, expected: Tensor, upstream: Tensor) -> None:
        where, atol, rtol = case.describe(), self.tolerances[0], self.tolerances[1]
        if got.shape != expected.shape:
            raise _Verdict(f"Shape: for {where}, {self.name} returned shape {_shape(got)}; the reference "
                           f"returns {_shape(expected)}.{self._hint(case, (), got, None, upstream)}")
        differ = _differences(got, expected, atol, rtol)
        if differ is not None:
            count, largest, index = differ
            raise _Verdict(f"Values: for {where}, {count} of {got.numel()} entries differ from the "
                           f"reference, by up to {largest:.3g} (tolerance {atol:g}), the largest "
                           f"{_where(case, 'output', index, self.describe)}."
                           f"{self._hint(case, (), got, None, upstream)}")

    def _compare_gradients(self, case: Case, got: Tensor, got_inputs, expected: Tensor, expected_inputs,
                           upstream: Tensor) -> None:
        where, (grad_atol, grad_rtol) = case.describe(), self.tolerances[2:]
        try:
            got_grads = _gradients(got, got_inputs, upstream)
        except Exception as error:
            raise _Verdict(f"Gradient: the values match, but backpropagating through {self.name} failed for "
                           f"{where}: {type(error).__name__}: {str(error)[:_MAX_ERROR_TEXT]}") from None
        expected_grads = _gradients(expected, expected_inputs, upstream)
        for key in self.grad:
            mine, theirs = got_grads[key], expected_grads[key]
            if mine is None:
                raise _Verdict(f"Gradient: the values match, but the output does not depend on {key} "
                               f"through autograd (for {where}), so no gradient reaches {key}. Compute "
                               "with torch operations on the tensors themselves: no .item(), .tolist(), "
                               ".numpy(), .detach() or torch.tensor(...) copies on the way.")
            differ = _differences(mine, theirs, grad_atol, grad_rtol)
            if differ is not None:
                count, largest, index = differ
                raise _Verdict(f"Gradient: the values match, but the gradient with respect to {key} "
                               f"differs for {where}: {count} of {mine.numel()} entries, by up to "
                               f"{largest:.3g} (tolerance {grad_atol:g}), the largest "
                               f"{_where(case, key, index, self.describe)}."
                               f"{self._hint(case, self.grad, got, got_grads, upstream)}")

    def summary(self, count: int) -> str:
        """What a pass checked, e.g. "`f` matches the reference on 4 random cases: shapes and values."."""
        grad = list(self.grad)
        names = ", ".join(grad[:-1]) + " and " + grad[-1] if len(grad) > 1 else "".join(grad)
        checked = f"shapes, values and gradients with respect to {names}" if grad else "shapes and values"
        return (f"{self.subject} matches the reference on {count} random case{'s' if count != 1 else ''}: "
                f"{checked}.")


def check_function(
    answer: Optional[Callable],
    reference: Callable[..., Tensor],
    cases: Sequence[Case],
    *,
    grad: Sequence[str] = (),
    mistakes: Sequence[Mistake] = (),
    describe: Optional[Callable[[Case, str, tuple], str]] = None,
    hint: str = "",
    atol: float = 1e-5,
    rtol: float = 1e-5,
    grad_atol: float = 1e-4,
    grad_rtol: float = 1e-4,
) -> bool:
    """Run the reader's function next to ``reference`` on every case and print the verdict.

    Case by case, stopping at the first difference, it checks that ``answer`` runs and
    returns a tensor, then its shape, then its values (within ``atol + rtol * |reference|``),
    then, for every input named in ``grad``, the gradient of ``sum(output * upstream)``
    with respect to that input (``upstream`` is a seeded random tensor shaped like the
    output, the same for both functions).

    Args:
        answer: the reader's function. ``None``, or a stub that raises
            ``NotImplementedError``, is reported as not answered yet.
        reference: the right function, with the same parameters; returns a tensor.
        cases: the calls to compare on; build their inputs from a seeded generator so
            that every run checks the same inputs.
        grad: names of tensor inputs whose gradient must match too, e.g. ``("image", "grid")``.
        mistakes: known wrong versions; when the reader's result equals one, its hint is printed.
        describe: ``describe(case, entry, index) -> str`` says in words what entry ``index``
            is, of the output (``entry == "output"``) or of the gradient of the input named
            ``entry``; e.g. ``"output row i=2, column j=0, its x"``.
        hint: printed when a difference matches none of ``mistakes``.
        atol, rtol: tolerances for the values.
        grad_atol, grad_rtol: tolerances for the gradients.

    Returns:
        ``True`` when every case matches, else ``False``. Prints ``"Correct! ..."``,
        ``"Not quite. ..."`` (what differed, for which inputs, by how much, and a hint) or
        ``"Not answered yet: ..."``.

    Example:
        >>> import torch
        >>> def my_softmax(x):
        ...     return x.exp() / x.exp().sum(-1, keepdim=True)
        >>> check_function(my_softmax, lambda x: x.softmax(-1),
        ...                [Case({"x": torch.randn(3, 4)})], grad=("x",))
        Correct! `my_softmax` matches the reference on 1 random case: shapes, values and gradients with respect to x.
        True
    """
    if answer is None:
        return report(False, answer=None, todo="write the function, pass it to the check and run the cell again.")
    if not callable(answer):
        return report(False, f"pass the function itself (its name, without brackets); got a "
                             f"{type(answer).__name__}.")
    comparison = _Comparison(answer, reference, tuple(grad), tuple(mistakes), describe, hint and " " + hint,
                             (atol, rtol, grad_atol, grad_rtol))
    try:
        for number, case in enumerate(cases):
            comparison.compare(number, case)
    except _Verdict as verdict:
        if verdict.not_answered:
            return report(False, answer=None, todo=str(verdict))
        return report(False, str(verdict))
    return report(True, answer=answer, detail=comparison.summary(len(cases)))


def borrowed_name(function, names: Sequence[str]) -> Optional[str]:
    """The first of ``names`` that ``function``'s code (or code nested in it) refers to, as
    a global, an attribute or a closure variable; ``None`` if it uses none of them. A check
    calls it to catch an answer that calls the package's own version of the exercise."""
    used, codes = set(), [getattr(function, "__code__", None)]
    while codes:
        code = codes.pop()
        if code is not None:
            used.update(code.co_names + code.co_freevars)
            codes += [const for const in code.co_consts if hasattr(const, "co_names")]
    return next((name for name in names if name in used), None)
