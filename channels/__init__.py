"""Delivery channels for approved care messages: an HTTP webhook (the default) and SMTP e-mail."""

from channels.base import Channel, Outcome, Outgoing, Result
from channels.smtp import SmtpChannel
from channels.webhook import WebhookChannel

__all__ = ["Channel", "Outcome", "Outgoing", "Result", "SmtpChannel", "WebhookChannel"]
