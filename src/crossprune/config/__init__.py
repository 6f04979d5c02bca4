"""The config: its types (structured configs), the checks of its values that build nothing, the checks of what it
writes to, and bad input as one line (light: no torch, no mlflow)."""
