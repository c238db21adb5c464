"""Migration scripts (a package so that they ship with the code)."""
