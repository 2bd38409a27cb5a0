"""The audit trail: event model, redaction, a non-blocking writer with a disk spool."""
