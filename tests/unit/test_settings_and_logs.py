import logging
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import SettingsError, load_settings
from bot.logs import RedactTokens

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env from the repository
    for name in ("ADMIN_IDS", "TEAM_TIMEZONE", "DATABASE_URL", "DEFAULT_LOCALE", "LIFECYCLE_ACTIVE_DAYS",
                 "WEBHOOK_URL", "WEBHOOK_SECRET", "REDIS_URL", "EVENTS_SECRET", "TELEGRAM_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_follow_the_domain() -> None:
    s = load_settings()
    assert s.team_timezone == "Asia/Shanghai" and s.default_locale == "zh_CN"
    assert (s.lifecycle_active_days, s.lifecycle_silent_days, s.lifecycle_sleeping_days) == (90, 180, 360)
    assert s.database_url == "sqlite+aiosqlite:///data/touchpoint.db" and s.admin_ids == frozenset()


def test_admin_ids_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_IDS", "123, 456")
    assert load_settings().admin_ids == {123, 456}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ADMIN_IDS", "12,abc"),
        ("TEAM_TIMEZONE", "Mars/Olympus"),
        ("DEFAULT_LOCALE", "fr"),
        ("DATABASE_URL", "mysql://x"),
        ("LIFECYCLE_ACTIVE_DAYS", "-3"),
    ],
)
def test_a_wrong_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert str(error.value).startswith(f"Setting {name}:") and "\n" not in str(error.value)


def test_the_documented_example_file_loads_as_the_defaults(tmp_path: Path) -> None:
    # Copied to .env as it is, its empty values mean "unset": no empty secret turns a feature on.
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text(encoding="utf-8"), encoding="utf-8")
    s = load_settings()
    assert s.events_secret is None and s.webhook_url is None and s.redis_url is None
    assert s.telegram_bot_token is None and s.care_webhook_url is None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WEBHOOK_URL": "https://bot.example.com/tg"}, "WEBHOOK_SECRET must be set with WEBHOOK_URL"),
        ({"WEBHOOK_URL": "bot.example.com/tg", "WEBHOOK_SECRET": "s"}, "Setting WEBHOOK_URL:"),
        ({"WEBHOOK_URL": "https://x.example/tg", "WEBHOOK_SECRET": "no spaces"}, "Setting WEBHOOK_SECRET:"),
    ],
)
def test_webhook_settings_are_checked_at_start(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=expected):
        load_settings()


def test_webhook_path_comes_from_the_public_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_URL", "https://bot.example.com/tg/webhook")
    monkeypatch.setenv("WEBHOOK_SECRET", "s3cret_-")
    assert load_settings().webhook_path == "/tg/webhook"


def test_thresholds_must_rise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFECYCLE_ACTIVE_DAYS", "400")
    with pytest.raises(SettingsError, match="LIFECYCLE_ACTIVE_DAYS < LIFECYCLE_SILENT_DAYS"):
        load_settings()


def test_cli_refuses_to_start_with_a_clear_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TEAM_TIMEZONE": "Nowhere/Void", "TELEGRAM_BOT_TOKEN": "1:x"}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "Setting TEAM_TIMEZONE" in result.stderr and "Traceback" not in result.stderr


def test_cli_without_token_points_to_the_sandbox(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "TELEGRAM_BOT_TOKEN" in result.stderr and "sandbox" in result.stderr


def test_tokens_never_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("touchpoint.test")
    logger.addFilter(RedactTokens())
    token = "4242424242:AAE-touchpoint-secret-token-0123456789"
    with caplog.at_level(logging.INFO):
        logger.info("calling https://api.telegram.org/bot%s/getMe", token)
        try:
            raise RuntimeError(f"connection to /bot{token}/sendMessage failed")
        except RuntimeError:
            logger.exception("failed")
    assert token not in caplog.text
    assert "<token>" in caplog.text
