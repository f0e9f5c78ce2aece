"""Helpers for the Spatial Transformer Networks course.

The notebooks import from here instead of repeating code. Modules, from the
bottom up:

- ``geometry``: theta matrices, affine grids and bilinear sampling by hand.
- ``transforms``: the grid generators a transformer can use (affine, attention,
  projective, thin-plate spline).
- ``data``: CIFAR-10 and MNIST as in-memory uint8 tensors, and distortions.
- ``distortions``: the STN paper's distorted-MNIST variants (R, RTS, P, E, cluttered),
  and photographs placed on a canvas with RTS's draw.
- ``models``: the ``SpatialTransformer`` module and the course's CNNs.
- ``recipes``: the ``Recipe`` dataclass, one description of a training run, and the
  course's named recipes.
- ``optim``: Muon for convolution filters, beside SGD (a recipe's ``muon_lr``).
- ``training``: seeding, device choice, fit / evaluate, checkpoints.
- ``experiments``: the distorted-MNIST comparison (notebook 06 and its benchmark).
- ``canvas``: CIFAR-10 on a canvas, a CNN against an STN-CNN (notebook 07 and its benchmark).
- ``addition``: MNIST addition with one or two transformers (notebook 08 and its benchmark).
- ``stored``: the stored runs' weights, checked by SHA-256 (downloaded on Colab).
- ``machine``: the CPU and accelerator a run used, in words.
- ``files``: atomic writes, so an interrupted save never leaves half a file.
- ``viz`` and ``widgets``: figures and ipywidgets sliders.
"""

__version__ = "0.1.0"

# The repository the notebooks install from on Colab; kept in this one place.
REPO_URL = "https://github.com/stn-course/stn-course"
