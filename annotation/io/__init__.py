"""Reading and writing preference-data files, without the database.

``readers`` turn JSONL, CSV and Hugging Face ``datasets`` folders into numbered
records; ``rows`` validates each record into an ``ImportRow``; ``validate``
ties the two together and reports every bad line. On the way out, ``rules`` and
``aggregate`` decide which verdicts become training rows, ``writers`` renders
them in TRL's layouts, and ``hf`` (the only module that imports ``datasets``)
reads and writes dataset folders. ``paths`` confines every user-provided path
(``safe_path_under``) and ``snapshots`` is the one writer of snapshot folders. The services in
``annotation.services`` connect these pure functions to the models.

Nothing here imports Django, Celery or the ``prefloop`` package (backends and the
trainer import ``paths``); ``tests/foundation/test_layers.py`` guards it.
"""
