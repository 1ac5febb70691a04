"""The experiment configs, shipped with the package so that a regular install has them.

Each module has ``get_config(arg=None)`` (``arg``: comma-separated presets) and
``PRESETS``. The CLI reads them as files, ``--config=configs/<name>.py[:presets]``:
in a clone ``configs`` is a link to this directory; elsewhere ``jebm.main`` finds
``configs/<name>.py`` here when the working directory has no such file.
"""
