"""localdocdb authentication (SCRAM, MONGODB-AWS, MONGODB-X509), users and roles."""
