"""training: datasets -> tf.data, batched augmentation, and ``train(config) -> run dir``.

Public API::

    import training
    run_dir = training.train(training.TrainConfig(data="digits", model="simple_cnn", epochs=20))
    split, info = training.run_data(run_dir)          # exactly the split the run used
    model = training.load_run_model(run_dir)
"""

from training.augment import AugmentConfig
from training.config import TrainConfig
from training.data import DatasetInfo, SplitArrays, get_datasets, load_arrays, run_data
from training.errors import DataError, TrainingError
from training.images import decode_image
from training.rundir import load_run_model
from training.train import train

__all__ = ["AugmentConfig", "DataError", "DatasetInfo", "SplitArrays", "TrainConfig", "TrainingError",
           "decode_image", "get_datasets", "load_arrays", "load_run_model", "run_data", "train"]
