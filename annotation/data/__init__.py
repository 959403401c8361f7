"""Hand-written SQL of the annotator's hot path (data access, no business rules).

Services decide (``annotation/services/assignment.py``, ``judgments.py``); the
statements they run live here because the ORM's versions cost more Python time than
the database spent on them (docs/performance.md).
"""
