"""Data mixtures: the Mixture type, the training-side checks, and the proxy search over mixtures."""
