"""Building the care queue's parts from settings and TOUCHPOINT_CONFIG: rules, templates, channels."""

from __future__ import annotations

from pathlib import Path

from bot.config import Settings
from bot.palette_file import load_config
from channels import Channel, SmtpChannel, WebhookChannel
from crm.care_rules import CareRuleError, CareTable, parse_care_rules
from crm.templates import TemplateBook, TemplateError, parse_templates


def load_care_table(config_dir: Path) -> CareTable:
    return load_config(config_dir, "care_rules.yaml", parse_care_rules, CareRuleError)


def load_templates(config_dir: Path) -> TemplateBook:
    return load_config(config_dir, "templates.yaml", parse_templates, TemplateError)


def build_channels(settings: Settings) -> dict[str, Channel]:
    """The channels that are configured; a rule whose channel is missing fails visibly per message."""
    channels: dict[str, Channel] = {}
    if settings.care_webhook_url:
        secret = settings.care_webhook_secret.get_secret_value() if settings.care_webhook_secret else None
        channels["webhook"] = WebhookChannel(settings.care_webhook_url, secret, shop_name=settings.shop_name)
    if settings.smtp_host:
        channels["email"] = SmtpChannel(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_from,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            starttls=settings.smtp_starttls,
        )
    return channels
