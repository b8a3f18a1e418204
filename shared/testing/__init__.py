"""Helpers for other people's test suites: the pytest plugin (``mtls_ca``, ``mtls_server``, ...)."""
