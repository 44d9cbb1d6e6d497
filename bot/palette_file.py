"""Reads the tag palette from TOUCHPOINT_CONFIG/tags.yaml (falling back to the shipped default)."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.views.labels import TAGS
from crm.palette import Palette, PaletteError, parse_palette

SHIPPED_CONFIG = Path(__file__).resolve().parent.parent / "config"


def load_palette(config_dir: Path) -> Palette:
    path = config_dir / "tags.yaml"
    if not path.exists():
        path = SHIPPED_CONFIG / "tags.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PaletteError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    try:
        return parse_palette(data, known_labels=frozenset(TAGS))
    except PaletteError as exc:
        raise PaletteError(f"{path}: {exc}") from None
