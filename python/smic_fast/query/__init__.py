"""Questions asked of the codes: compressed-domain search, semantic arithmetic and what the atoms mean."""
