"""confsec: conformance tests for secure conferencing (3GPP TR 33.829 clause 5.1)."""

__version__ = "0.1.0"
