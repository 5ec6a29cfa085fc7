"""``python -m facebook_catalog.emulator``: the same as ``fb-catalog emulator``."""

from __future__ import annotations

import argparse
import sys

from facebook_catalog.emulator.server import add_arguments, run_from_args


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m facebook_catalog.emulator",
        description="Run a local emulator of Meta's Catalog Batch API on loopback.",
    )
    add_arguments(parser)
    return run_from_args(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
