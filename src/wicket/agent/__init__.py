"""The database service (agent): joins the cluster, heartbeats its databases, serves tunnels."""
