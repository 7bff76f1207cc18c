"""What every package stands on: atomic files, locks, safe loaders, image decoding, masks, pixel metrics,
overlays, batched prediction, progress lines and the CLI harness. Imports nothing from training or export.
"""
