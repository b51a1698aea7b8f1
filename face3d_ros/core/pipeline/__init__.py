"""face3d core: pipeline."""
