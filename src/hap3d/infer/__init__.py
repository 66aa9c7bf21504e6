"""Inference on images and videos: keypoint formats, the predictor, rendering, export and the demo.

``Predictor`` and ``load_predictor_model`` are re-exported lazily: they pull in the network code, which the
light submodules (keypoint reading, export) do not need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hap3d.infer.predictor import Predictor, load_predictor_model

__all__ = ["Predictor", "load_predictor_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from hap3d.infer import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'hap3d.infer' has no attribute {name!r}")
