"""Tests for stn_utils.exercises.check_function, the check of code-writing exercises.

A toy reference (a row-wise softmax scaled by a weight) stands in for the notebooks' functions:
the right function passes, the stub is "not answered yet", and every kind of difference
(shape, values, gradient, an error, a wrong return type) fails with a hint that names it.
"""

import pytest
import torch

from stn_utils.exercises import Case, Mistake, check_function, report

NOT_ATTEMPTED = "Not answered yet"


def reference(x, weight):
    """x (N, K), weight (K,) -> (N, K)."""
    return (x * weight).softmax(dim=-1)


def cases():
    generator = torch.Generator().manual_seed(0)
    return [Case({"x": torch.randn(3, 4, generator=generator), "weight": torch.rand(4, generator=generator)}),
            Case({"x": torch.randn(2, 5, generator=generator), "weight": torch.rand(5, generator=generator)},
                 label="the second case")]


def run(answer, capsys, **kwargs):
    ok = check_function(answer, reference, cases(), grad=kwargs.pop("grad", ("x", "weight")), **kwargs)
    return ok, capsys.readouterr().out


def by_hand(x, weight):
    scaled = x * weight
    e = (scaled - scaled.max(dim=-1, keepdim=True).values).exp()
    return e / e.sum(dim=-1, keepdim=True)


def test_a_right_function_passes_and_says_what_was_checked(capsys):
    ok, out = run(by_hand, capsys)
    assert ok is True
    assert out.strip() == ("Correct! `by_hand` matches the reference on 2 random cases: shapes, values and "
                           "gradients with respect to x and weight.")


def test_the_reference_itself_passes(capsys):
    ok, out = run(reference, capsys)
    assert ok is True and "Correct!" in out and "Not quite" not in out


def test_without_grad_only_shapes_and_values_are_checked(capsys):
    ok, out = run(lambda x, weight: by_hand(x, weight).detach(), capsys, grad=())
    assert ok is True and "shapes and values." in out and "Your function" in out


def test_the_stub_is_not_answered_yet(capsys):
    def my_softmax(x, weight):
        # your code here
        raise NotImplementedError

    ok, out = run(my_softmax, capsys)
    assert ok is False
    assert out.startswith(NOT_ATTEMPTED) and "`my_softmax` still raises NotImplementedError" in out
    assert "Not quite" not in out and "Correct" not in out


def test_none_is_not_answered_yet(capsys):
    ok, out = run(None, capsys)
    assert ok is False and out.startswith(NOT_ATTEMPTED)


def test_a_value_that_is_not_a_function(capsys):
    ok, out = run(reference(torch.ones(1, 2), torch.ones(2)), capsys)
    assert ok is False and "Not quite." in out and "the function itself" in out


def test_an_error_is_reported_with_its_type_and_case(capsys):
    def broken(x, weight):
        raise ValueError("the sizes do not match\nsecond line")

    ok, out = run(broken, capsys)
    assert ok is False and "Not quite." in out
    assert "raised ValueError" in out and "the sizes do not match" in out and "second line" not in out
    assert "x of shape (3, 4), weight of shape (4,)" in out  # the default label names the inputs


def test_a_value_that_is_not_a_tensor(capsys):
    ok, out = run(lambda x, weight: by_hand(x, weight).tolist(), capsys)
    assert ok is False and "returned a list" in out and "shape (3, 4)" in out


def test_a_wrong_shape_names_both_shapes(capsys):
    ok, out = run(lambda x, weight: by_hand(x, weight)[:, None], capsys)
    assert ok is False and "Not quite. Shape:" in out and "(3, 1, 4)" in out and "(3, 4)" in out


def test_wrong_values_name_the_case_the_size_and_the_place(capsys):
    def off_in_one_entry(x, weight):
        out = by_hand(x, weight)
        return out + torch.nn.functional.one_hot(torch.tensor(5), out.numel()).reshape(out.shape) * 0.25

    ok, out = run(off_in_one_entry, capsys)
    assert ok is False and "Not quite. Values:" in out
    assert "1 of 12 entries" in out and "by up to 0.25" in out and "at index (1, 1)" in out


def test_later_cases_are_checked_and_named_by_their_label(capsys):
    def right_for_four_columns(x, weight):
        return by_hand(x, weight) if x.shape[1] == 4 else by_hand(x, weight) * 2

    ok, out = run(right_for_four_columns, capsys)
    assert ok is False and "for the second case" in out


def test_small_float_differences_pass(capsys):
    ok, out = run(lambda x, weight: by_hand(x.double(), weight.double()).float() + 1e-7, capsys)
    assert ok is True, out


def test_nan_is_a_difference(capsys):
    ok, out = run(lambda x, weight: by_hand(x, weight) * float("nan"), capsys)
    assert ok is False and "Values:" in out and "12 of 12" in out


def test_a_matching_mistake_gives_its_hint_and_others_stay_silent(capsys):
    mistakes = [Mistake(lambda x, weight: x.softmax(dim=-1), "the weight is missing."),
                Mistake(lambda x, weight: (x * weight).softmax(dim=0), "softmax over the wrong axis.")]
    ok, out = run(lambda x, weight: (x * weight).softmax(0), capsys, mistakes=mistakes, hint="default hint")
    assert ok is False and "softmax over the wrong axis." in out
    assert "the weight is missing" not in out and "default hint" not in out


def test_without_a_matching_mistake_the_default_hint_is_printed(capsys):
    mistakes = [Mistake(lambda x, weight: x.softmax(dim=-1), "the weight is missing.")]
    ok, out = run(lambda x, weight: by_hand(x, weight) + 1, capsys, mistakes=mistakes, hint="default hint")
    assert ok is False and "default hint" in out and "the weight is missing" not in out


def test_a_mistake_that_cannot_run_does_not_match(capsys):
    mistakes = [Mistake(lambda x, weight: x.reshape(7, 7), "impossible.")]
    ok, out = run(lambda x, weight: by_hand(x, weight) + 1, capsys, mistakes=mistakes)
    assert ok is False and "impossible" not in out


def test_describe_puts_the_worst_entry_into_words(capsys):
    def describe(case, entry, index):
        return f"{entry} row {index[0]}, column {index[1]}"

    ok, out = run(lambda x, weight: by_hand(x, weight) + (x > 10).float() + 0.5 * (x == x.max()).float(),
                  capsys, describe=describe)
    assert ok is False and "(output row " in out


def test_a_broken_description_does_not_hide_the_verdict(capsys):
    ok, out = run(lambda x, weight: by_hand(x, weight) + 1, capsys, describe=lambda *args: 1 / 0)
    assert ok is False and "Values:" in out


def test_an_output_cut_off_from_autograd_fails_on_the_gradient(capsys):
    ok, out = run(lambda x, weight: by_hand(x, weight).detach(), capsys)
    assert ok is False and "Not quite. Gradient:" in out and "does not depend on x" in out


def test_one_input_cut_off_is_named(capsys):
    ok, out = run(lambda x, weight: by_hand(x, weight.detach()), capsys)
    assert ok is False and "does not depend on weight" in out and "depend on x" not in out


def test_right_values_with_a_wrong_gradient(capsys):
    def straight_through(x, weight):
        right = by_hand(x, weight)
        return right.detach() + (x * weight) - (x * weight).detach()  # same values, another gradient

    mistakes = [Mistake(lambda x, weight: by_hand(x, weight) * 2, "twice the values."),
                Mistake(straight_through, "the gradient of the identity.")]
    ok, out = run(straight_through, capsys, mistakes=mistakes)
    assert ok is False and "Gradient: the values match, but the gradient with respect to x differs" in out
    assert "the gradient of the identity." in out and "twice the values" not in out


def test_the_inputs_are_copied_for_each_call(capsys):
    def edits_its_input(x, weight):
        out = by_hand(x, weight)
        x.zero_()  # would spoil the shared inputs of later calls if they were not copies
        return out

    shared = cases()
    before = [case.inputs["x"].clone() for case in shared]
    assert check_function(edits_its_input, reference, shared) is True
    assert all(torch.equal(case.inputs["x"], x) for case, x in zip(shared, before))
    assert "Correct!" in capsys.readouterr().out


def test_it_works_under_no_grad(capsys):
    with torch.no_grad():
        ok, out = run(by_hand, capsys)
    assert ok is True, out


def test_the_verdict_is_the_same_every_run(capsys):
    wrong = lambda x, weight: (x * weight).softmax(0)  # noqa: E731
    assert run(wrong, capsys)[1] == run(wrong, capsys)[1]


def test_report_keeps_its_three_verdicts(capsys):
    assert report(True) is True and capsys.readouterr().out == "Correct!\n"
    assert report(True, detail="All 3 cases.") is True and capsys.readouterr().out == "Correct! All 3 cases.\n"
    assert report(False, "Look again.") is False and capsys.readouterr().out == "Not quite. Look again.\n"
    assert report(False, answer=None) is False
    assert capsys.readouterr().out.startswith("Not answered yet: replace the None above")
    assert report(False, answer=None, todo="write it.") is False
    assert capsys.readouterr().out == "Not answered yet: write it.\n"


@pytest.mark.parametrize("label, expected", [("", "x of shape (1, 2), size=(3, 5)"), ("mine", "mine")])
def test_case_labels(label, expected):
    assert Case({"x": torch.zeros(1, 2), "size": (3, 5)}, label=label).describe() == expected


def test_the_docstring_example_runs():
    import doctest

    from stn_utils.exercises import functions

    assert doctest.testmod(functions).failed == 0
