"""Benchmarks that need a seeded PostgreSQL database; see bench/README.md."""
