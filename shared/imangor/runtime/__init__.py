"""The function runtime: declare endpoints on a Unit; the runtime does the HTTP around them."""

# isort: off
from imangor.runtime import startup  # first: it pauses the collector while the unit starts

# isort: on
from imangor.registry import FORM, JSON, Deploy, RateLimit
from imangor.runtime.context import Context
from imangor.runtime.unit import Unit

__all__ = [
    "FORM",
    "JSON",
    "Context",
    "Deploy",
    "RateLimit",
    "Unit",
    "startup",
]
