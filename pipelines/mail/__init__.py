"""Email: messages queued in the database by the request that needs them, sent by a
background worker over SMTP with retries (pipelines/mail/worker.py)."""
