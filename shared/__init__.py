"""Auto Doctor backend library used by the deployed functions: configuration, database access and services.

Development tooling lives in `shared.dev` (never imported from here)."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
