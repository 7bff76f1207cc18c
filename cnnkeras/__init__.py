"""cnnkeras: spec-driven CNN builders, a model zoo, summaries and analysis (Keras 2 via tf_keras)."""

from cnnkeras.errors import SpecError, UserError

__all__ = ["SpecError", "UserError"]
__version__ = "0.1.0"
