"""Writes of AI feedback: constitutions, judges, and feedback jobs (one module each)."""
