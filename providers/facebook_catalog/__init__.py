"""Apache Airflow provider for Meta (Facebook) product catalogs."""

from __future__ import annotations

__version__ = "0.1.0"
