"""Shared pytest setup: draw figures off-screen, and keep torch to one thread."""

import matplotlib
import pytest
import torch

matplotlib.use("Agg")


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The unit tests use tiny tensors; with several OpenMP threads on a small, shared CPU
    the threads mostly wait for each other (tiny convolutions ran up to 100x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
