"""Prefect flows and the ``seqflow`` command line."""
