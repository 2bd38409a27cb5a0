"""localdocdb command handlers, one module per family; importing them fills the table."""
