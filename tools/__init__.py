"""Repository tooling that is neither the library nor a benchmark (e.g. the asv screenshots)."""
