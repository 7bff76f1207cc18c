"""``--class-weight``: ``None``, ``balanced`` or ``{class name or id: weight}`` -> ``Model.fit``'s dict."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from cnnkeras.training.errors import TrainingError

logger = logging.getLogger(__name__)


def class_weights(option: Any, y: np.ndarray, class_names: list[str]) -> dict[int, float] | None:
    """``{class id: weight}`` for ``Model.fit`` (a key that is a class name means that class; unlisted weigh 1).

    Args:
        option: ``None``, ``"balanced"`` or a dict keyed by class name or id.
        y: Training labels (for ``balanced``).
        class_names: The data's class names.

    Returns:
        The weights, or ``None``.

    Raises:
        TrainingError: A key that is no class, or a weight that is not a number >= 0.
    """
    num_classes = len(class_names)
    if option is None:
        return None
    if option == "balanced":
        from sklearn.utils.class_weight import compute_class_weight

        present = np.unique(y)
        w = compute_class_weight("balanced", classes=present, y=y)
        return {i: float(w[list(present).index(i)]) if i in present else 1.0 for i in range(num_classes)}
    weights: dict[int, float] = {}
    for key, value in option.items():
        as_id = int(key) if str(key).isdigit() and int(key) < num_classes else None
        as_name = class_names.index(str(key)) if str(key) in class_names else None
        if as_id is not None and as_name is not None and as_id != as_name:
            logger.warning("class_weight key %r names class %d (names win over ids); class id %d is %r",
                           key, as_name, as_id, class_names[as_id])
        cid = as_name if as_name is not None else as_id
        if cid is None:
            raise TrainingError(f"class_weight key {key!r} is not a class: use a class id 0..{num_classes - 1} or a "
                                f"class name ({', '.join(class_names[:10])}{', ...' if num_classes > 10 else ''}). "
                                f"Received: {option}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise TrainingError(f"class_weight for class {key!r} must be a number >= 0. Received: {value!r}")
        weights[cid] = float(value)
    return {i: weights.get(i, 1.0) for i in range(num_classes)}
