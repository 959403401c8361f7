"""Reading and writing preference-data files, without the database.

``readers`` turn JSONL, CSV and Hugging Face ``datasets`` folders into numbered
records; ``rows`` validates each record into an ``ImportRow``; ``validate``
ties the two together and reports every bad line. On the way out, ``rules`` and
``aggregate`` decide which verdicts become training rows, ``writers`` renders
them in TRL's layouts, and ``hf`` (the only module that imports ``datasets``)
reads and writes dataset folders. The services in ``annotation.services``
connect these pure functions to the models.
"""
