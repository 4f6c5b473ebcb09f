"""Background work on Cloud Tasks: queues, the outbox, handlers and scheduled jobs."""
