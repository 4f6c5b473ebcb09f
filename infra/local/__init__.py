"""What stands in for Google on a laptop: the dev server, embedded PostgreSQL and Redis, the
Cloud Tasks dispatcher and Cloud Scheduler, the OIDC signer, the storage emulator and the
seeder. Production code never imports this package (tests/test_layers.py checks it)."""
