"""The records site: `envgen runs --html DIR`, a static site of the provenance records (envgen/site/build.py)."""
