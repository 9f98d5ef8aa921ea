"""lumos benchmarks against peer libraries. Run ``python -m benchmarks.run [family ...]``."""
