"""Benchmarks of airflow-provider-facebook-catalog: see benchmarks/README.md. Run with `make bench`."""

from __future__ import annotations
