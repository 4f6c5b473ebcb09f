"""Domain logic per resource: no flask, no HTTP status codes."""
