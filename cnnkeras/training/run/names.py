"""The names of the files in a run directory: the one place that knows them."""

CONFIG = "config.json"            # every setting of the run (enough to reproduce it)
MODEL = "model.keras"             # the final model
METRICS = "metrics.json"          # test metrics of the final model
HISTORY = "history.csv"           # one row per epoch
LABELS = "labels.txt"             # class names, one per line
DATA_FILES = "data_files.json"    # a folder's files per split (path, bytes, sha256): the data fingerprint's lists
CHECKPOINTS = "checkpoints"       # per-epoch state for --resume
CURVES_PNG = "curves.png"
CONFUSION_PNG = "confusion_matrix.png"
PREDICTIONS_PNG = "predictions.png"
EXPORT = "export"                 # the default export folder inside the run
METADATA = "metadata.json"        # written beside every exported artifact
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
CHECKPOINT_STATE = "state.json"    # inside CHECKPOINTS: the epoch a --resume continues from
BEST_WEIGHTS = "best.weights.h5"  # inside CHECKPOINTS: the weights at the best monitored value
