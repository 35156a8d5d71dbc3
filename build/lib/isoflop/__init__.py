"""isoflop: reproducible scaling-law studies (curate -> train -> track -> fit -> report)."""

__version__ = "0.1.0"
