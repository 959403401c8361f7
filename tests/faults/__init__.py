"""Fault drills: kill web and Celery workers, restart PostgreSQL, take the broker away,
and check that nothing is lost, nothing is doubled, and every failure says why.

See docs/operations.md ("Fault drills") for what each drill shows and what an operator
does in each failure.
"""
