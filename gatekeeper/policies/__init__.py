"""Release policies shipped with Gatekeeper (YAML data files)."""
