"""Distribution strategies: one device, several devices on one machine, several machines.

``mirrored`` on a machine without GPUs splits the CPU into logical devices, which is how the
multi-device code path is exercised (and tested) without GPUs. ``multiworker`` reads ``TF_CONFIG``
(``{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": i}}``).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from cnnkeras._keras import tf
from cnnkeras.training.errors import TrainingError

logger = logging.getLogger(__name__)


def make_strategy(name: str, devices: int | None = None) -> Any:
    """Create the ``tf.distribute`` strategy for a run (call before any other TF work in the process).

    Args:
        name: ``auto`` (MirroredStrategy on more than one GPU, else the default), ``one_device``,
            ``mirrored`` or ``multiworker``.
        devices: For ``mirrored`` without GPUs: logical CPU devices to create (default 2).

    Returns:
        The strategy.

    Raises:
        TrainingError: ``multiworker`` without a usable ``TF_CONFIG``, or an unknown name.
    """
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if name == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy()
        cpus = _split_cpu(devices or 2)
        return tf.distribute.MirroredStrategy(cpus)
    if name == "multiworker":
        check_tf_config()
        if not gpus and devices and devices > 1:
            _split_cpu(devices)
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise TrainingError(f"unknown strategy {name!r}; use auto, one_device, mirrored or multiworker.")


def _split_cpu(count: int) -> list[str]:
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:  # the runtime is already initialized: use whatever logical CPUs exist
        logger.warning("cannot split the CPU into %d logical devices after TensorFlow has started; "
                       "create the strategy before other TF work", count)
    names = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(names) < count:
        logger.warning("mirrored strategy runs on %d CPU device(s): %s", len(names), names)
    return names


def tf_config() -> tuple[str | None, int | None, dict[str, Any]]:
    """``(task type, task index, cluster)`` of ``TF_CONFIG``, read by TensorFlow's own parser (the
    ``TFConfigClusterResolver`` that ``MultiWorkerMirroredStrategy`` uses); ``(None, None, {})`` without one.

    Returns:
        The task type and index (``None`` when ``TF_CONFIG`` has no task) and ``{job: [addresses]}``.

    Raises:
        ValueError, TypeError, KeyError, AttributeError: ``TF_CONFIG`` is malformed.
    """
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    return resolver.task_type, resolver.task_id, resolver.cluster_spec().as_dict()


def check_tf_config() -> tuple[str, int, dict[str, Any]]:
    """Read and check ``TF_CONFIG`` for multi-worker training.

    Returns:
        :func:`tf_config`'s ``(task type, task index, cluster)``.

    Raises:
        TrainingError: Missing or malformed.
    """
    example = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    if not os.environ.get("TF_CONFIG"):
        raise TrainingError(f"--strategy multiworker needs TF_CONFIG on every machine, e.g. {example} "
                            f"(index 1 on the second machine).")
    try:
        task_type, index, cluster = tf_config()
        if task_type is None or index is None:
            raise KeyError("task" if task_type is None and index is None else "type" if task_type is None else "index")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TrainingError(f"TF_CONFIG is malformed ({exc}); expected {example}") from None
    if not cluster.get("worker") and not cluster.get("chief"):
        raise TrainingError(f"TF_CONFIG lists no workers; expected {example}")
    return task_type, index, cluster


def is_chief() -> bool:
    """Whether this process writes the run directory (always True outside multi-worker training).

    Returns:
        True for the chief (the ``chief`` task, or worker 0 when there is none).
    """
    try:
        task_type, index, cluster = tf_config()
    except (ValueError, TypeError, KeyError, AttributeError):  # malformed: make_strategy says so
        return True
    if task_type is None:  # no TF_CONFIG: a single process; one without a task: not the chief
        return not os.environ.get("TF_CONFIG")
    if task_type == "chief":
        return True
    return task_type == "worker" and (index or 0) == 0 and "chief" not in cluster
