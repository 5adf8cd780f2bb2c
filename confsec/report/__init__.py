"""Verdicts, the pytest plugin that records them, and the report writers."""
