"""Augmentation of the training pipeline: batched image policies, paired image+mask transforms, on-device
augmentation and the preview grid. Never inside an exported graph.
"""
