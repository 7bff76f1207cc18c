"""Data of a run: sources, folders, splits, streaming from disk, and the tf.data pipelines.
"""
