"""Infrastructure helpers for local development, tests and deployment."""
