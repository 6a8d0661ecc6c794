"""Auto Doctor backend library: configuration, database access, platform tooling and services."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
