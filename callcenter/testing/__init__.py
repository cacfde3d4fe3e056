"""Harnesses that run the real external systems (Kannel...) on 127.0.0.1 for tests and benchmarks.

Nothing here is imported by the engine itself.
"""
