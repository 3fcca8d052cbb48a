"""Published claims, checked against what seqbench measures (claims/claims.yaml)."""
