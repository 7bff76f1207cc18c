"""Transfer learning: resolve the backbone and weights, build the model on a pretrained body, fine-tune in
two phases.
"""
