"""Reverse tunnel between database agents and the proxy: one control connection per agent and
a warm pool of pre-dialed data connections, one per client session (no multiplexing)."""
