"""docker-compose.yaml and docker/Dockerfile, checked without a Docker engine.

* The file is valid against the Compose Specification's JSON schema (the copy that
  ``check-jsonschema`` vendors as ``vendor.compose-spec``), as written and after interpolation.
* Every Airflow service runs the same image with the same executor, metadata DB, broker, secrets,
  connections and Variables; URLs point at services that exist, on the ports they listen on.
* Each component's command and health check parses with Airflow's own CLI parser; the emulator's
  command parses with the emulator's own argument parser.
* The Dockerfile installs this project the way the project installs it, on an Airflow and Python
  the project supports, and copies what building the wheel needs.
* The init step's S3 part (``fb-catalog setup-buckets`` and the sample upload) runs against a
  real S3 server (moto) with the connection exactly as the compose file defines it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from tests.fixtures.s3 import MotoServer

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"
DOCKERFILE = REPO_ROOT / "docker" / "Dockerfile"
BIN_DIR = Path(sys.executable).parent
DOCKERFILE_REF = "docker/Dockerfile"

# Settings that every Airflow component must agree on.
SHARED_SETTINGS = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__CORE__AUTH_MANAGER",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW_CONN_FACEBOOK_CATALOG_DEFAULT",
    "AIRFLOW_CONN_AWS_DEFAULT",
    "AIRFLOW_VAR_FACEBOOK_CATALOG_LANDING_BUCKET",
    "AIRFLOW_VAR_FACEBOOK_CATALOG_SYNCED_BUCKET",
)

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable interpolation (``$$``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["plain"]
        op, arg = match["op"], match["arg"] or ""
        current = env.get(name)
        if op == ":-":
            return current or arg
        if op == "-":
            return arg if current is None else current
        if op in (":?", "?") and not current:
            raise KeyError(f"{name} is required: {arg}")
        if op in (":+", "+"):
            return arg if current else ""
        return current or ""

    return _VARIABLE.sub(substitute, value)


@pytest.fixture(scope="module")
def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def compose(raw_compose: dict[str, Any]) -> dict[str, Any]:
    """The file as `docker compose config` would see it with no .env and no variables set."""
    return interpolate(raw_compose, {})


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def airflow_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if "AIRFLOW__CORE__EXECUTOR" in environment(service)
    }


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def healthcheck_command(service: dict[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return shlex.split(test)
    if test[0] == "CMD-SHELL":
        return shlex.split(" ".join(test[1:]))
    assert test[0] == "CMD", test
    return list(test[1:])


def port_of(url: str) -> int:
    parts = urlsplit(url)
    return (
        parts.port
        or {"http": 80, "https": 443, "redis": 6379, "postgresql": 5432}[parts.scheme.split("+")[0]]
    )


def container_ports(service: dict[str, Any]) -> set[int]:
    ports = set()
    for entry in service.get("ports", []):
        ports.add(int(str(entry).rsplit(":", 1)[-1]))
    ports.update(int(p) for p in service.get("expose", []))
    return ports


# The Compose specification


def test_compose_file_matches_the_compose_specification() -> None:
    result = subprocess.run(
        [str(BIN_DIR / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_interpolated_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    import jsonschema

    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


# The Airflow components


def test_the_stack_has_each_airflow_component_once(compose: dict[str, Any]) -> None:
    commands = sorted(
        " ".join(command_of(s)) for s in airflow_services(compose).values() if s.get("profiles") is None
    )
    assert commands == sorted(
        [
            "api-server",
            "scheduler",
            "dag-processor",
            "triggerer",
            "celery worker",
            "/opt/airflow/docker/airflow-init.sh",
        ]
    )
    assert {"postgres", "redis", "s3", "graph-api-emulator"} <= set(compose["services"])


def test_every_airflow_service_runs_the_same_image_and_settings(compose: dict[str, Any]) -> None:
    services = airflow_services(compose)
    assert len(services) >= 6
    images = {(s["image"], s["build"]["context"], s["build"]["dockerfile"]) for s in services.values()}
    assert images == {(images.copy().pop()[0], ".", DOCKERFILE_REF)}
    for key in SHARED_SETTINGS:
        values = {name: environment(s).get(key) for name, s in services.items()}
        assert len(set(values.values())) == 1, f"{key} differs between services: {values}"
        assert None not in values.values(), f"{key} missing: {values}"
    env = environment(next(iter(services.values())))
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"], "the JWT secret must be set, and the same, everywhere"
    assert env["AIRFLOW__API__SECRET_KEY"]
    # The emulator runs the same image (it is part of the provider).
    emulator = compose["services"]["graph-api-emulator"]
    assert emulator["image"] == images.pop()[0]
    assert emulator["build"]["dockerfile"] == DOCKERFILE_REF


def test_metadata_db_broker_and_execution_api_point_at_their_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = environment(next(iter(airflow_services(compose).values())))
    db = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    postgres = environment(services["postgres"])
    assert db.scheme == "postgresql+psycopg2"
    assert (db.hostname, db.port or 5432) == ("postgres", 5432)
    assert (db.username, db.password, db.path.lstrip("/")) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )
    # Celery's results go to the same database.
    result_backend = env["AIRFLOW__CELERY__RESULT_BACKEND"]
    assert result_backend.startswith("db+postgresql://")
    assert urlsplit(result_backend.removeprefix("db+"))._replace(scheme="x") == db._replace(scheme="x")
    broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
    assert (broker.scheme, broker.hostname) == ("redis", "redis")
    assert port_of(env["AIRFLOW__CELERY__BROKER_URL"]) in container_ports(services["redis"])
    execution_api = env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    api_service = next(n for n, s in airflow_services(compose).items() if command_of(s) == ["api-server"])
    assert urlsplit(execution_api).hostname == api_service
    assert port_of(execution_api) in container_ports(services[api_service])
    assert urlsplit(execution_api).path == "/execution/"


def test_health_checks_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    one_shot = {name for name, s in services.items() if s.get("restart") == "no"}
    assert one_shot == {"airflow-init"}
    for name, service in services.items():
        if name not in one_shot and not service.get("profiles"):
            assert "healthcheck" in service, f"{name} has no health check"
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}'s health"
            elif rule["condition"] == "service_completed_successfully":
                assert dependency in one_shot
    for name, service in airflow_services(compose).items():
        if name != "airflow-init":
            assert service["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    # The scheduler's health endpoint is only served when it is enabled.
    assert environment(services["airflow-scheduler"])["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"


def test_commands_and_health_checks_parse_with_airflows_cli(compose: dict[str, Any]) -> None:
    argv_lists = []
    for name, service in airflow_services(compose).items():
        command = command_of(service)
        if name != "airflow-init" and command != ["version"]:
            argv_lists.append(command)
        check = healthcheck_command(service) if "healthcheck" in service else []
        if check[:1] == ["airflow"]:
            argv_lists.append([arg.replace("${HOSTNAME}", "host") for arg in check[1:]])
        if check[:1] == ["celery"]:
            app = check[check.index("--app") + 1]
            argv_lists.append(["__import__", app.rsplit(".", 1)[0], app.rsplit(".", 1)[1]])
    probe = """
import importlib, json, sys
from airflow.cli.cli_parser import get_parser
parser = get_parser()
for argv in json.loads(sys.argv[1]):
    if argv[0] == "__import__":
        assert hasattr(importlib.import_module(argv[1]), argv[2]), argv
        continue
    args = parser.parse_args(argv)
    assert callable(args.func), argv
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env["AIRFLOW__CORE__EXECUTOR"] = environment(compose["services"]["airflow-worker"])[
        "AIRFLOW__CORE__EXECUTOR"
    ]
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = os.environ.get(
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "sqlite://"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(argv_lists)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert len(argv_lists) >= 7


def test_the_emulator_command_parses_and_matches_the_connection(compose: dict[str, Any]) -> None:
    import argparse

    from facebook_catalog.emulator.server import add_arguments, config_from_args
    from facebook_catalog.hooks.graph_api import settings_from_connection

    emulator = compose["services"]["graph-api-emulator"]
    command = command_of(emulator)
    assert command[:3] == ["python", "-m", "facebook_catalog.emulator"]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(command[3:])
    config = config_from_args(args)
    assert args.host == "0.0.0.0"

    env = environment(next(iter(airflow_services(compose).values())))
    conn = json.loads(env["AIRFLOW_CONN_FACEBOOK_CATALOG_DEFAULT"])
    assert conn["conn_type"] == "facebook_catalog"
    settings = settings_from_connection(
        conn_id="facebook_catalog_default", host=conn["host"], password=conn["password"], extra=conn["extra"]
    )
    host = urlsplit(settings.base_url)
    assert host.hostname == "graph-api-emulator"
    assert host.port == args.port
    assert args.port in container_ports(emulator)
    assert settings.access_token in config.access_tokens
    assert settings.app_secret == config.app_secret  # both unset by default
    assert settings.catalog_id.isdigit()


def test_the_aws_connection_and_variables_reach_the_s3_service(compose: dict[str, Any]) -> None:
    from airflow.models.connection import Connection

    env = environment(next(iter(airflow_services(compose).values())))
    aws = Connection(conn_id="aws_default", uri=env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert aws.conn_type == "aws"
    endpoint = urlsplit(aws.extra_dejson["endpoint_url"])
    s3 = compose["services"]["s3"]
    assert endpoint.hostname == "s3"
    assert endpoint.port == int(environment(s3)["MOTO_PORT"])
    assert endpoint.port in container_ports(s3)
    assert aws.extra_dejson["region_name"] == env["AWS_DEFAULT_REGION"]
    # The landing Asset (read at parse time) and the Variable (read at run time) name one bucket.
    assert env["FACEBOOK_CATALOG_LANDING_BUCKET"] == env["AIRFLOW_VAR_FACEBOOK_CATALOG_LANDING_BUCKET"]
    assert env["AIRFLOW_VAR_FACEBOOK_CATALOG_SYNCED_BUCKET"]


def test_overriding_from_env_switches_every_service_to_real_meta_and_aws(raw_compose: dict[str, Any]) -> None:
    real = {
        "FB_CATALOG_GRAPH_API_URL": "https://graph.facebook.com",
        "FB_CATALOG_ACCESS_TOKEN": "EAAreal",
        "FB_CATALOG_CATALOG_ID": "4242",
        "FB_CATALOG_APP_SECRET": "app-secret",
        "FB_CATALOG_AWS_CONN": "aws://?region_name=eu-west-1",
        "FB_CATALOG_LANDING_BUCKET": "shop-landing",
        "AIRFLOW_JWT_SECRET": "a-long-random-secret",
    }
    compose = interpolate(raw_compose, real)
    for service in airflow_services(compose).values():
        env = environment(service)
        conn = json.loads(env["AIRFLOW_CONN_FACEBOOK_CATALOG_DEFAULT"])
        assert conn["host"] == "https://graph.facebook.com"
        assert conn["extra"] == {"catalog_id": "4242", "app_secret": "app-secret", "api_version": "v25.0"}
        assert env["AIRFLOW_CONN_AWS_DEFAULT"] == "aws://?region_name=eu-west-1"
        assert env["AIRFLOW_VAR_FACEBOOK_CATALOG_LANDING_BUCKET"] == "shop-landing"
        assert env["FACEBOOK_CATALOG_LANDING_BUCKET"] == "shop-landing"
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == "a-long-random-secret"


def test_dags_are_mounted_where_airflow_reads_them(compose: dict[str, Any]) -> None:
    for name, service in airflow_services(compose).items():
        dags_folder = environment(service)["AIRFLOW__CORE__DAGS_FOLDER"]
        mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        assert mounts.get(dags_folder) == "./dags", name
    assert (REPO_ROOT / "dags" / "facebook_catalog_sync.py").exists()


# The Dockerfile


def load_pyproject() -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def dockerfile_args() -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", DOCKERFILE.read_text(), flags=re.M))


def test_dockerfile_builds_on_a_supported_airflow_and_python() -> None:
    text = DOCKERFILE.read_text()
    args = dockerfile_args()
    assert re.search(
        r"^FROM apache/airflow:\$\{AIRFLOW_VERSION\}-python\$\{PYTHON_VERSION\}$", text, flags=re.M
    )
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    (airflow_requirement,) = [
        Requirement(r) for r in re.findall(r'"(apache-airflow[<>=!~][^"]*)"', pyproject)
    ]
    assert Version(args["AIRFLOW_VERSION"]) in airflow_requirement.specifier
    assert f"Programming Language :: Python :: {args['PYTHON_VERSION']}" in pyproject
    # The image's Airflow is one the project tests and pins (not necessarily this venv's: the
    # compat lanes run these checks on other versions).
    constraints = REPO_ROOT / "constraints" / f"airflow-{args['AIRFLOW_VERSION']}.txt"
    assert f"\napache-airflow=={args['AIRFLOW_VERSION']}\n" in constraints.read_text()


def test_dockerfile_installs_the_project_as_the_project_does() -> None:
    text = DOCKERFILE.read_text()
    match = re.search(r"^RUN pip install(.*?)&&", text, flags=re.M | re.S)
    assert match, "the Dockerfile installs the project with pip"
    run = " ".join(match.group(1).replace("\\\n", " ").split())
    # The project itself, as `make venv` installs it (`pip install .`), never from an index.
    assert "/opt/airflow/provider-src" in run
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in run
    assert (
        '--constraint "https://raw.githubusercontent.com/apache/airflow/constraints-${AIRFLOW_VERSION}/'
        'constraints-${PYTHON_VERSION}.txt"'
    ) in run
    assert "--no-cache-dir" in run
    copies = re.findall(r"^COPY (?:--\S+ )*(.+) (\S+)$", text, flags=re.M)
    copied_to_src = {
        src
        for sources, dest in copies
        if dest.startswith("/opt/airflow/provider-src")
        for src in sources.split()
    }
    pyproject = load_pyproject()
    readme = pyproject["project"]["readme"]
    wheel_roots = {
        p.split("/")[0] for p in pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    }
    assert {"pyproject.toml", readme, *wheel_roots} <= copied_to_src
    assert "airflow providers get airflow-provider-facebook-catalog" in text
    # What the compose file runs from docker/ is in the image.
    docker_copied = {
        Path(src).name
        for sources, dest in copies
        if dest == "/opt/airflow/docker/"
        for src in sources.split()
    }
    for name in ("airflow-init.sh", "seed_landing.py", "sample-products.csv"):
        assert name in docker_copied
        assert (REPO_ROOT / "docker" / name).exists()


# The init step


def test_init_script_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(REPO_ROOT / "docker" / "airflow-init.sh")], check=True)


def test_init_creates_the_buckets_and_seeds_landing_through_the_compose_connection(
    compose: dict[str, Any], moto_server: MotoServer, tmp_path: Path
) -> None:
    moto_server.reset()
    service = environment(compose["services"]["airflow-init"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
    env.update({k: v for k, v in service.items() if k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_", "AWS_"))})
    # The same connection, with the s3 service's address replaced by the local moto server's.
    env["AIRFLOW_CONN_AWS_DEFAULT"] = env["AIRFLOW_CONN_AWS_DEFAULT"].replace(
        "http%3A%2F%2Fs3%3A5000", moto_server.endpoint_url.replace(":", "%3A").replace("/", "%2F")
    )
    assert moto_server.endpoint_url.split("//")[1].replace(":", "%3A") in env["AIRFLOW_CONN_AWS_DEFAULT"]
    env.update(
        AIRFLOW_HOME=str(tmp_path), AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null"
    )
    landing = service["AIRFLOW_VAR_FACEBOOK_CATALOG_LANDING_BUCKET"]
    synced = service["AIRFLOW_VAR_FACEBOOK_CATALOG_SYNCED_BUCKET"]
    setup = [
        str(BIN_DIR / "fb-catalog"),
        "setup-buckets",
        "--landing-bucket",
        landing,
        "--synced-bucket",
        synced,
        "--create",
    ]
    seed = [
        sys.executable,
        str(REPO_ROOT / "docker" / "seed_landing.py"),
        str(REPO_ROOT / "docker" / "sample-products.csv"),
        landing,
    ]
    for command in (setup, seed, seed):
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    assert "already has files" in result.stdout  # a second init does not pile up copies

    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=moto_server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=landing, Prefix="landing/").get("Contents", [])]
    assert len(keys) == 1
    assert keys[0].endswith("-products.csv")
    assert s3.head_bucket(Bucket=synced)
    rules = s3.get_bucket_lifecycle_configuration(Bucket=landing)["Rules"]
    assert {r["Filter"].get("Prefix") for r in rules} >= {"archive/"}
    validate = subprocess.run(
        [str(BIN_DIR / "fb-catalog"), "validate", str(REPO_ROOT / "docker" / "sample-products.csv")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr
