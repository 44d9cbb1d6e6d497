"""Local sandbox: a Telegram Bot API emulator and helpers to run the bot against it."""
