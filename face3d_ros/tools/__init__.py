"""Command-line programs (console_scripts)."""
