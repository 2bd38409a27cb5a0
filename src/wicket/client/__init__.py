"""Client layer shared by `wctl` and `wsh`: identities, profiles, proxy web calls, output."""
