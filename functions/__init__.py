"""HTTP function adapters (thin: method, auth, validation, one call into `shared`)."""
