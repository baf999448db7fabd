"""The package version, on floor 0 so that every module can record it (checkpoints do)."""
VERSION = "0.1.0"
