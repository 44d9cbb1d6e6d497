"""The deployment files agree with the code: no Docker engine runs here, so check what can be
checked without one — the image gets every package, and compose wires replicas the way bot/ expects."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from bot.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_image_copies_every_package_the_project_installs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set(re.findall(r"^COPY (\w+) \./\1$", (ROOT / "Dockerfile").read_text(), re.M))
    assert packages <= copied, f"Dockerfile lacks COPY for {sorted(packages - copied)}"


def test_compose_runs_two_replicas_sharing_postgres_redis_and_one_webhook() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    bots = {name: svc for name, svc in compose["services"].items() if name.startswith("bot")}
    assert len(bots) >= 2
    for service in bots.values():
        env = service["environment"]
        assert env["DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert env["REDIS_URL"].startswith("redis://")
        # Settings must accept what compose sets (the public host filled in).
        settings = Settings(
            _env_file=None,
            database_url=env["DATABASE_URL"].replace("${POSTGRES_PASSWORD:-touchpoint}", "pw"),
            webhook_url=re.sub(r"\$\{PUBLIC_HOST[^}]*\}", "bot.example.com", env["WEBHOOK_URL"]),
            webhook_secret="s3cret",
            http_host=env["HTTP_HOST"],
            http_port=int(env["HTTP_PORT"]),
        )
        caddy = (ROOT / "deploy" / "Caddyfile").read_text()
        assert settings.webhook_path in caddy and "/api/events" in caddy
        assert f"{next(iter(bots))}:{settings.http_port}" in caddy
        assert "/metrics" not in caddy.split("@public", 1)[1].split("\n", 1)[0]  # not public
