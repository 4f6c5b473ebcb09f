"""Imangor shared library: everything that is not a route."""
