"""Reads YAML configuration from TOUCHPOINT_CONFIG (falling back to the shipped default): the tag
palette here, the scenario table in bot/scenario_book.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from bot.views.labels import TAGS
from crm.care_rules import CareRuleError
from crm.palette import Palette, PaletteError, parse_palette
from crm.scenarios import ScenarioError
from crm.templates import TemplateError

T = TypeVar("T")
# What a wrong file under TOUCHPOINT_CONFIG raises: start-up reports it in one line, no traceback.
CONFIG_ERRORS: tuple[type[ValueError], ...] = (PaletteError, ScenarioError, CareRuleError, TemplateError)
SHIPPED_CONFIG = Path(__file__).resolve().parent.parent / "config"


def load_config(config_dir: Path, name: str, parse: Callable[[Any], T], error: type[ValueError]) -> T:
    """Read TOUCHPOINT_CONFIG/<name> (else the shipped default) and parse it; an error names the file."""
    path = config_dir / name
    if not path.exists():
        path = SHIPPED_CONFIG / name
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    try:
        return parse(data)
    except error as exc:
        raise error(f"{path}: {exc}") from None


def load_palette(config_dir: Path) -> Palette:
    return load_config(
        config_dir, "tags.yaml", lambda data: parse_palette(data, known_labels=frozenset(TAGS)), PaletteError
    )
