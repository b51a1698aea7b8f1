"""face3d core: people."""
