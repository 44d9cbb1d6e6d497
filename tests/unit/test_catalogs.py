"""Every user-facing string is translated in both catalogues, with the same placeholders."""

import re
import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"\{[a-z_]+\}")


def catalog(lang: str):
    with (ROOT / "locales" / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return read_po(f, locale=lang)


def test_catalogues_are_complete_and_placeholders_match() -> None:
    for lang in ("zh_CN", "en"):
        for message in catalog(lang):
            if not message.id:
                continue
            assert message.string, f"{lang}: no translation for {message.id!r}"
            assert sorted(PLACEHOLDER.findall(message.id)) == sorted(PLACEHOLDER.findall(message.string)), (
                f"{lang}: placeholders differ in {message.id!r}"
            )


def test_every_string_in_the_code_is_in_the_catalogues(tmp_path: Path) -> None:
    pot = tmp_path / "messages.pot"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-k",
            "_",
            "-k",
            "__",
            "-o",
            str(pot),
            "bot/",
            "sandbox/",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    with pot.open("rb") as f:
        wanted = {m.id for m in read_po(f) if m.id}
    for lang in ("zh_CN", "en"):
        have = {m.id for m in catalog(lang) if m.id}
        assert not wanted - have, f"{lang} lacks {sorted(wanted - have)} (run scripts/i18n)"
