"""Sliders for theta: move a number, watch the sampling grid and the output move.

Use :func:`theta_explorer` in a notebook cell; :class:`ThetaExplorer` holds the state.
"""

from __future__ import annotations

import base64
import io

import ipywidgets as widgets
import torch
from IPython import get_ipython
from IPython.display import Image, clear_output, display
from matplotlib.backends.backend_agg import FigureCanvasAgg

from . import geometry
from .viz import _figure, _imshow, _single_image, fit_overlay_view, grid_overlay_coords, plot_grid_overlay, to_display

__all__ = ["ThetaExplorer", "theta_explorer"]

# name: (identity value, min, max, step) for the make_theta parameters.
PARAMETERS = {
    "rotation": (0.0, -180.0, 180.0, 1.0),
    "scale_x": (1.0, 0.2, 2.0, 0.05),
    "scale_y": (1.0, 0.2, 2.0, 0.05),
    "shear": (0.0, -1.0, 1.0, 0.05),
    "translate_x": (0.0, -1.0, 1.0, 0.05),
    "translate_y": (0.0, -1.0, 1.0, 0.05),
}
# Raw slider name -> (row, column) in theta.
RAW_ENTRIES = geometry.THETA_ENTRIES
MODES = ("parametrised", "raw theta")


def _slider(name, value, low, high, step):
    return widgets.FloatSlider(value=value, min=low, max=high, step=step, description=name,
                               readout_format=".2f", continuous_update=True)


def _format_theta(theta: torch.Tensor) -> str:
    # round(...) + 0.0 turns -0.00 into +0.00, so the title does not flicker sign at zero.
    rows = [" ".join(f"{round(v, 2) + 0.0:+.2f}" for v in row) for row in theta[0].tolist()]
    return f"θ = [{rows[0]}]\n    [{rows[1]}]"


class ThetaExplorer:
    """Interactive view of one image warped by an adjustable theta.

    Args:
        image: ``(C, H, W)`` or ``(1, C, H, W)``, float in [0, 1] or uint8.
        output_size: ``(H_out, W_out)`` of the warped image; defaults to the input size.
        align_corners, padding_mode: passed to :func:`geometry.warp`. ``"zeros"``
            makes the area sampled from outside the input visibly black.

    Attributes:
        sliders / raw_sliders: dict name -> ``FloatSlider`` (make_theta parameters /
            the six entries a, b, tx, c, d, ty).
        mode: ``ToggleButtons`` choosing which set drives theta.
        theta: current ``(1, 2, 3)``; warped: current ``(1, C, H_out, W_out)``.
        figure: the one matplotlib Figure, updated in place by :meth:`redraw`.
        widget: the ipywidgets container to display.
    """

    def __init__(self, image, *, output_size=None, align_corners=False, padding_mode="zeros"):
        self.image = _single_image(image)
        self.output_size = output_size
        self.align_corners = align_corners
        self.padding_mode = padding_mode
        self.sliders = {name: _slider(name, *spec) for name, spec in PARAMETERS.items()}
        self.raw_sliders = {name: _slider(name, float(i == j), -2.0, 2.0, 0.01)
                            for name, (i, j) in RAW_ENTRIES.items()}
        self.mode = widgets.ToggleButtons(options=MODES, value=MODES[0])
        reset_button = widgets.Button(description="reset", icon="undo")
        self.output = widgets.Output()
        self._controls = widgets.VBox(list(self.sliders.values()))
        # "row wrap": on a narrow screen (Colab's side panel) the figure drops below the sliders.
        self.widget = widgets.VBox([widgets.HBox([self.mode, reset_button]),
                                    widgets.HBox([self._controls, self.output],
                                                 layout=widgets.Layout(flex_flow="row wrap"))])
        self._muted = False  # set while sliders are changed in bulk, so they cause one redraw
        self._build_figure()
        self.redraw()
        # The first render ran constrained layout; freezing it keeps the panels from
        # jumping while sliders move and saves the layout pass on every redraw.
        self.figure.set_layout_engine("none")
        for slider in [*self.sliders.values(), *self.raw_sliders.values()]:
            slider.observe(self._on_change, names="value")
        self.mode.observe(self._on_mode, names="value")
        reset_button.on_click(lambda _: self.reset())

    def __repr__(self) -> str:
        c, h, w = self.image.shape[1:]
        return (f"ThetaExplorer(image {c}x{h}x{w}, output_size={self.output_size}, "
                f"align_corners={self.align_corners}, padding_mode={self.padding_mode!r})")

    def _build_figure(self) -> None:
        # Artists are created once here; redraw only moves their data, which is what
        # keeps a slider drag responsive (re-plotting from scratch is several times slower).
        self.figure, axes = _figure(1, 2, figsize=(7, 3.6))
        self._canvas = FigureCanvasAgg(self.figure)
        self._left, right = axes[0]
        identity = geometry.identity_theta()
        plot_grid_overlay(self.image, identity, ax=self._left, output_size=self.output_size,
                          align_corners=self.align_corners)
        self._grid_lines = self._left.lines[:-2]
        self._border, self._corner = self._left.lines[-2:]
        self._left.set_title("input + where the output samples", fontsize=9)
        self._output_image = _imshow(right, self._warp(identity)[0])
        right.set_title("output", fontsize=9)
        right.set_xticks([])
        right.set_yticks([])
        self._title = self.figure.suptitle("", family="monospace", fontsize=10)

    def _warp(self, theta: torch.Tensor) -> torch.Tensor:
        return geometry.warp(self.image, theta, self.output_size,
                             padding_mode=self.padding_mode, align_corners=self.align_corners)

    def _current_theta(self) -> torch.Tensor:
        if self.mode.value == MODES[1]:
            theta = torch.zeros(1, 2, 3)
            for name, (i, j) in RAW_ENTRIES.items():
                theta[0, i, j] = self.raw_sliders[name].value
            return theta
        return geometry.make_theta(**{name: s.value for name, s in self.sliders.items()})

    def render_png(self) -> bytes:
        """The current figure as PNG bytes (one Agg draw, no tight-bbox second pass)."""
        buffer = io.BytesIO()
        # Light compression: ~25% larger files, but encoding is a large share of a redraw.
        self._canvas.print_png(buffer, pil_kwargs={"compress_level": 1})
        return buffer.getvalue()

    def redraw(self):
        """Recompute theta and the warp from the sliders, update the figure and the view.

        Returns the matplotlib Figure.
        """
        self.theta = self._current_theta()
        self.warped = self._warp(self.theta)
        input_size = tuple(self.image.shape[-2:])
        segments, border = grid_overlay_coords(self.theta, input_size, self.output_size,
                                               align_corners=self.align_corners,
                                               lines=len(self._grid_lines) // 2)
        for line, (xs, ys) in zip(self._grid_lines, segments):
            line.set_data(xs, ys)
        self._border.set_data(border[0], border[1])
        self._corner.set_data(border[0][:1], border[1][:1])
        fit_overlay_view(self._left, border, input_size)
        self._output_image.set_data(to_display(self.warped[0]))
        self._title.set_text(_format_theta(self.theta))
        self._png = self.render_png()
        # A PNG we rendered ourselves, shown through a plain display_data message: it
        # works in JupyterLab and Colab alike and skips the inline backend's extra pass.
        if get_ipython() is not None:  # outside IPython (plain scripts, tests) display() would just print
            with self.output:
                clear_output(wait=True)
                display(Image(data=self._png, format="png"))
        return self.figure

    def _set_quietly(self, values: dict, sliders: dict) -> None:
        self._muted = True
        try:
            for name, value in values.items():
                slider = sliders[name]
                # Widen the range rather than let the slider clamp the value and change theta.
                slider.max, slider.min = max(slider.max, value), min(slider.min, value)
                slider.value = value
        finally:
            self._muted = False

    def _on_change(self, change) -> None:
        if not self._muted:
            self.redraw()

    def _on_mode(self, change) -> None:
        if change["new"] == MODES[1]:
            # Start the raw entries from what is on screen, so switching changes nothing.
            values = {name: float(self.theta[0, i, j]) for name, (i, j) in RAW_ENTRIES.items()}
            self._set_quietly(values, self.raw_sliders)
            self._controls.children = list(self.raw_sliders.values())
        else:
            self._controls.children = list(self.sliders.values())
        self.redraw()

    def reset(self):
        """Put every slider back to the identity map and redraw; returns the Figure."""
        self._set_quietly({name: spec[0] for name, spec in PARAMETERS.items()}, self.sliders)
        self._set_quietly({name: float(i == j) for name, (i, j) in RAW_ENTRIES.items()}, self.raw_sliders)
        return self.redraw()


class _WithStaticFallback:
    """Display bundle: the live widget plus a PNG of its current state.

    Why: widget views live only while a kernel runs; GitHub, nbconvert and nbval
    see just the saved cell output. One output carrying both mimetypes lets a live
    front-end show the sliders while static viewers fall back to the image, without
    the figure appearing twice as it would with a second, separate display().
    """

    def __init__(self, explorer: ThetaExplorer):
        self.explorer = explorer

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = dict(self.explorer.widget._repr_mimebundle_() or {})
        bundle["image/png"] = base64.b64encode(self.explorer._png).decode("ascii")
        bundle["text/plain"] = "ThetaExplorer (run the notebook to move the sliders)"
        return bundle


def theta_explorer(image, **kwargs) -> ThetaExplorer:
    """Build a :class:`ThetaExplorer`, display it (with a static fallback image), return it.

    Keyword arguments go to :class:`ThetaExplorer`. Assign the result
    (``explorer = theta_explorer(img)``) to read ``explorer.theta`` later.
    """
    explorer = ThetaExplorer(image, **kwargs)
    display(_WithStaticFallback(explorer))
    return explorer
