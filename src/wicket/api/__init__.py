"""The auth service's HTTP JSON API: shared error mapping and the client everyone uses."""
