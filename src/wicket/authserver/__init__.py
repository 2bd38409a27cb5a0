"""The auth service: cluster CAs and the HTTPS JSON API over the auth domain services."""
