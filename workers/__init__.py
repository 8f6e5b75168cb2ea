"""Gatekeeper."""
