"""The tag palette agents toggle on a card: groups of short, stable keys."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

TAG_KEY = re.compile(r"^[a-z0-9_]{1,24}$")


class PaletteError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Palette:
    groups: dict[str, tuple[str, ...]]
    custom_labels: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(k for keys in self.groups.values() for k in keys)

    def group_of(self, tag: str) -> str | None:
        return next((g for g, keys in self.groups.items() if tag in keys), None)


def parse_palette(data: Any, *, known_labels: frozenset[str] = frozenset()) -> Palette:
    """Validate a palette read from YAML; errors name the offending key."""
    if not isinstance(data, dict) or not isinstance(data.get("groups"), dict):
        raise PaletteError("tags: expected a mapping with 'groups'")
    groups: dict[str, tuple[str, ...]] = {}
    seen: set[str] = set()
    for group, keys in data["groups"].items():
        if not isinstance(keys, list) or not keys:
            raise PaletteError(f"tags: group {group!r} needs a non-empty list of keys")
        for key in keys:
            if not isinstance(key, str) or not TAG_KEY.match(key):
                raise PaletteError(f"tags: {key!r} in {group!r} is not a valid key (a-z, 0-9, _; ≤ 24)")
            if key in seen:
                raise PaletteError(f"tags: {key!r} appears twice")
            seen.add(key)
        groups[str(group)] = tuple(keys)
    labels = data.get("labels") or {}
    if not isinstance(labels, dict):
        raise PaletteError("tags: 'labels' must be a mapping")
    missing = sorted(k for k in seen if k not in known_labels and k not in labels)
    if missing:
        raise PaletteError(f"tags: no label for {', '.join(missing)} (add them under 'labels')")
    return Palette(groups=groups, custom_labels={str(k): dict(v) for k, v in labels.items()})
