"""Deployment targets as data: the board table (``boards.yaml``, loaded and checked by :mod:`.boards`) and the
fit arithmetic (:mod:`.fit`: RAM, flash, latency estimate per board).

It sits at the models level so that ``cnnkeras.training`` (the ``train --board`` pre-flight) and
``cnnkeras.export`` (``cnnkeras check --board``, which adds the measured TFLM arena) both use it.
"""
