"""Shared pytest setup: draw figures off-screen, so tests run headless."""

import matplotlib

matplotlib.use("Agg")
