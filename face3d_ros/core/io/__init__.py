"""face3d core: io."""
