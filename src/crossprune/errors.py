"""Bad input: one exception whose message is the one line the user sees (light: no torch, no mlflow)."""


class ConfigError(ValueError):
    """A config that cannot run; its message is the one line the user sees."""


def first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def one_line(e: Exception) -> str:
    """The whole message with its line breaks folded, for errors whose second line says what to do."""
    return " ".join(str(e).split()) or type(e).__name__
