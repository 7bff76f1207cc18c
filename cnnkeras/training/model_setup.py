"""The model of a training run: its spec, its record in ``config.json``, and building it for the data."""

from __future__ import annotations

from typing import Any

from cnnkeras.errors import DataError
from cnnkeras.training.config import TrainConfig
from cnnkeras.training.tasks import for_info


def load_spec(config: TrainConfig) -> Any:
    """The run's ``ModelSpec`` (sized and size-checked before any data is read), or ``None`` for a zoo model."""
    if config.spec is None:
        return None
    from cnnkeras.builder import as_spec
    from cnnkeras.sizing import plan

    spec = as_spec(config.spec)
    plan(spec)  # sizing and size limits before any data is read or resized to the spec's input
    return spec


def model_record(config: TrainConfig, spec: Any, name: str, info: Any) -> dict[str, Any]:
    """What ``config.json`` records to rebuild the model: the spec, the zoo name and overrides, or the backbone."""
    import cnnkeras
    from cnnkeras.training.transfer.setup import is_transfer, transfer_record

    if is_transfer(config):
        return transfer_record(config, name)
    if spec is not None:
        return {"source": "spec", "name": name, "spec": spec.to_dict()}
    record = {"source": "zoo", "name": name, "overrides": dict(config.model_args)}
    try:
        record["spec"] = cnnkeras.get_spec(name, info.input_shape, info.num_classes, **config.model_args).to_dict()
    except cnnkeras.SpecError:
        pass  # a model registered as a Keras builder has no spec; name + overrides reproduce it
    return record


def build_for_data(config: TrainConfig, spec: Any, name: str, info: Any) -> Any:
    """Build the model and check it fits the data (shape, classes, head)."""
    import cnnkeras
    from cnnkeras.training.transfer.model import build_transfer_model
    from cnnkeras.training.transfer.setup import is_transfer

    if is_transfer(config):  # --backbone / --init-from (cnnkeras.training.transfer.setup)
        model = build_transfer_model(config, info.input_shape, info.num_classes)
    elif spec is not None:
        if tuple(spec.input_shape) != tuple(info.input_shape):
            raise DataError(f"spec {spec.name} expects input {tuple(spec.input_shape)} but the data is "
                            f"{tuple(info.input_shape)}; pass --image-size/--channels to match the spec.")
        if spec.num_classes != info.num_classes:
            raise DataError(f"spec {spec.name} has num_classes={spec.num_classes} but {info.name} has "
                            f"{info.num_classes} classes ({', '.join(info.class_names[:10])}). Fix num_classes.")
        model = cnnkeras.build_model(spec)
    else:
        try:
            model = cnnkeras.create_model(name, info.input_shape, info.num_classes, **config.model_args)
        except cnnkeras.SpecError as exc:
            if "does not fit" not in str(exc):
                raise
            shape = "x".join(map(str, info.input_shape))
            raise cnnkeras.SpecError(
                f"{exc} The data ({info.name}) is {shape}: pass --image-size HxW (e.g. 32x32) to resize it, or "
                f"choose a model for this size (the default here is {cnnkeras.default_model_for(info.input_shape)}).") from None
    for_info(info).check_head(cnnkeras.model_head_type(model), name)
    if tuple(model.input_shape[1:]) != tuple(info.input_shape):
        raise DataError(f"model {name} expects input {tuple(model.input_shape[1:])} but the data is "
                        f"{tuple(info.input_shape)}; pass --image-size/--channels.")
    return model
