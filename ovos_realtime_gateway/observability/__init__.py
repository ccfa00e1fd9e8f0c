"""Prometheus metrics and the audit trail."""
