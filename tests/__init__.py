import yaml


def last_wins(text: str) -> str:
    """A test config made of a base and a test's own sections, a key given twice resolved as
    PyYAML reads it (the last one, whole): a kiosk refuses a config that gives a key twice."""
    return yaml.safe_dump(yaml.safe_load(text), sort_keys=False)
