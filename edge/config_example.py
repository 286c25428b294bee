"""deploy/kiosk.example.yaml, generated from the config's schema (edge/config.py): every key
with its default and its description, so the two can never disagree. A test checks that the
checked-in file is what this makes; after changing a setting, regenerate it:

    mpox kiosk example-config > deploy/kiosk.example.yaml
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel

from edge.config import KioskConfig

HEADER = """\
# A kiosk's config: every key shown with its default. Copy it, keep only what you change,
# and check it with `mpox kiosk validate-config FILE`. Relative paths are relative to this file.
# Generated from edge/config.py (`mpox kiosk example-config`): edit the descriptions there.
"""
COMMENT_AT = 29  # the column comments start at, as people align them by hand


def _value(v) -> str:
    """A default as YAML writes it inline."""
    if isinstance(v, Path):
        v = str(v)
    elif isinstance(v, tuple):
        v = list(v)
    return yaml.safe_dump(v, default_flow_style=True, width=1000).removesuffix("\n...\n").strip()


def _line(text: str, comment: str | None) -> str:
    if not comment:
        return text
    return f"{text.ljust(COMMENT_AT - 1)} # {comment}" if len(text) < COMMENT_AT - 1 else f"{text}  # {comment}"


def _section(model: type[BaseModel], defaults: BaseModel, indent: str) -> list[str]:
    lines = []
    for name, field in model.model_fields.items():
        value = getattr(defaults, name)
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if isinstance(value, BaseModel):
            lines += ["", _line(f"{indent}{name}:", field.description), *_section(type(value), value, indent + "  ")]
        elif "example" in extra:  # no default worth writing here (a machine's own path, or none): an example, commented
            lines.append(_line(f"{indent}# {name}: {extra['example']}", field.description))
        else:
            lines.append(_line(f"{indent}{name}: {_value(value)}", field.description))
    return lines


def example_config() -> str:
    return HEADER + "\n".join(_section(KioskConfig, KioskConfig(), "")) + "\n"


if __name__ == "__main__":
    print(example_config(), end="")
