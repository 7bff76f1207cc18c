"""The run directory: where it goes, the names of its files, its guard and locks, ``--resume``, and what a
finished run recorded (config, data).
"""
