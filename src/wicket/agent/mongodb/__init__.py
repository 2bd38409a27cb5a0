"""The MongoDB protocol engine of the database agent (authorize, audit, relay)."""
