"""The Cloud Tasks queues and their retry policy, declared once into the registry.

Terraform creates the queues from these numbers (through the generated inventory), the local
dispatcher reads the same inventory, and the task runner dead-letters at `max_attempts`.
"""

from __future__ import annotations

from imangor.registry import REGISTRY, Queue

REGISTRY.add_queue(Queue("main", 5, 1.0, 300.0, 5, 50.0, 20))
# Was Celery's high-priority route: short, user-facing work such as e-mails.
REGISTRY.add_queue(Queue("high-priority", 8, 0.5, 60.0, 4, 200.0, 50))
