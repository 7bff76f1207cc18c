"""cnnkeras: spec-driven CNN builders, a model zoo, summaries and analysis (Keras 2 via tf_keras).

Public API::

    import cnnkeras
    model = cnnkeras.create_model("simple_cnn", input_shape=(8, 8, 1), num_classes=10)
    spec = cnnkeras.ModelSpec.from_file("examples/specs/tiny.yaml")
    model = cnnkeras.build_model(spec)
    print(cnnkeras.summarize(model))
"""

from cnnkeras.builder import build_model, model_head_type, model_outputs_logits
from cnnkeras.errors import SpecError, UserError
from cnnkeras.sizing import output_shape, plan
from cnnkeras.spec import Conv, Dense, Dropout, Flatten, GlobalPool, Head, ModelSpec, Normalization, Pool, Residual
from cnnkeras.summary import LayerSummary, Summary, summarize
from cnnkeras.zoo import create_model, default_model_for, get_spec, list_models, register_model

__all__ = [
    "Conv", "Dense", "Dropout", "Flatten", "GlobalPool", "Head", "ModelSpec", "Normalization", "Pool", "Residual",
    "LayerSummary", "SpecError", "Summary", "UserError", "build_model", "create_model", "default_model_for", "get_spec", "list_models",
    "model_head_type", "model_outputs_logits", "output_shape", "plan", "register_model", "summarize",
]
__version__ = "0.1.0"
