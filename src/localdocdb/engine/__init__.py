"""localdocdb document engine: pure query, update, projection, sort, aggregation and storage."""
