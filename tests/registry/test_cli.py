"""``gatekeeper access``: add and list partners and people, list grants, check access."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from gatekeeper.adapters.registry import AccessRegistry
from gatekeeper.cli.access import app
from gatekeeper.errors import InputError
from gatekeeper.settings import Settings
from tests.registry.builders import RELEASE, grant_request, order, populate


class Cli:
    """Runs ``gatekeeper access ...`` with settings whose data directory is a temp dir."""

    def __init__(self, data_dir: Path) -> None:
        self.settings = Settings(data_dir=data_dir)
        self.runner = CliRunner()

    def __call__(self, *args: str) -> Result:
        return self.runner.invoke(app, list(args), obj=self.settings)

    def registry(self) -> AccessRegistry:
        return AccessRegistry(self.settings.effective_registry_url)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data")


class TestPartners:
    """Partners are added with a tier and jurisdiction and listed as a table or JSON."""

    def test_add_then_list(self, cli: Cli) -> None:
        added = cli(
            "partner", "add", "acme", "--name", "Acme Labs", "--tier", "invite_only",
            "--jurisdiction", "us",
        )  # fmt: skip
        cli("partner", "add", "shield", "--tier", "government_approved", "--jurisdiction", "us")

        assert added.exit_code == 0, added.output
        # The first write to a fresh data directory creates the registry and says so.
        note, line = added.output.strip().splitlines()
        assert note.startswith("note: no registry in the data directory ")
        assert line == "added partner acme (invite_only, us)"
        table = cli("partner", "list")
        assert "2 partners" in table.output
        assert "Acme Labs" in table.output
        listed = json.loads(cli("partner", "list", "--tier", "invite_only", "--json").output)
        assert listed == [
            {"id": "acme", "name": "Acme Labs", "tier": "invite_only", "jurisdiction": "us"}
        ]
        assert (cli.settings.data_dir / "registry.db").exists()

    def test_a_duplicate_partner_is_one_line_of_bad_input(self, cli: Cli) -> None:
        cli("partner", "add", "acme", "--tier", "invite_only", "--jurisdiction", "us")

        result = cli("partner", "add", "acme", "--tier", "invite_only", "--jurisdiction", "us")

        assert result.exit_code != 0
        # What the registry refused is bad input (exit 2), in the registry's own words.
        assert isinstance(result.exception, InputError)
        assert result.exception.exit_code == 2
        assert str(result.exception) == "partner acme already exists"

    def test_an_unknown_tier_is_a_usage_error(self, cli: Cli) -> None:
        result = cli("partner", "add", "acme", "--tier", "trusted", "--jurisdiction", "us")

        assert result.exit_code == 2
        assert "trusted" in result.output


class TestPeople:
    """People are added for a partner that exists; nationality defaults to unknown."""

    def test_add_then_list(self, cli: Cli) -> None:
        cli("partner", "add", "acme", "--tier", "invite_only", "--jurisdiction", "us")

        added = cli(
            "person", "add", "alice", "--partner", "acme", "--nationality", "us_person",
            "--location", "us",
        )  # fmt: skip
        cli("person", "add", "walker")

        assert added.output.strip() == "added person alice of acme (us_person)"
        people = json.loads(cli("person", "list", "--json").output)
        assert [(p["id"], p["nationality"]) for p in people] == [
            ("alice", "us_person"),
            ("walker", "unknown"),
        ]
        assert [
            p["id"] for p in json.loads(cli("person", "list", "--partner", "acme", "--json").output)
        ] == ["alice"]
        assert "unknown" in cli("person", "list").output

    def test_a_person_of_an_unknown_partner_is_refused(self, cli: Cli) -> None:
        result = cli("person", "add", "alice", "--partner", "ghost")

        assert isinstance(result.exception, InputError)
        assert result.exception.exit_code == 2
        assert str(result.exception) == "no partner ghost"


class TestGrantsAndChecks:
    """Grants list per release; check exits 0 on allow and 1 on deny, with one line of reason."""

    @pytest.fixture
    def granted(self, cli: Cli) -> Cli:
        with cli.registry() as registry:
            populate(registry)
            registry.grant_for_cohorts(grant_request())
        return cli

    def test_grants_of_a_release(self, granted: Cli) -> None:
        listed = json.loads(granted("grants", RELEASE, "--json").output)

        assert [g["partner_id"] for g in listed] == ["acme", "globex", "shield"]
        assert {g["status"] for g in listed} == {"active"}
        assert "acme" in granted("grants", RELEASE).output
        assert json.loads(granted("grants", "no-such-release", "--json").output) == []

    def test_check_allows_with_the_grant(self, granted: Cli) -> None:
        result = granted("check", "--model", "aurora", "--person", "alice")

        assert result.exit_code == 0
        assert result.output.startswith("allow (grant): grant g-")
        assert len(result.output.strip().splitlines()) == 1

    def test_check_denies_by_order_and_fails_closed(self, granted: Cli) -> None:
        with granted.registry() as registry:
            registry.apply_order(order(scope="foreign_persons"))

        foreign = granted("check", "--model", "aurora", "--person", "bruno")
        unknown = granted("check", "--model", "aurora", "--person", "casey", "--json")

        assert foreign.exit_code == 1
        assert foreign.output.strip() == "deny (order): order ec-1 covers foreign persons"
        assert unknown.exit_code == 1
        decision = json.loads(unknown.output)
        assert decision["allowed"] is False
        assert decision["rule"] == "fail_closed"
        assert decision["order_id"] == "ec-1"
        orders = json.loads(granted("orders", "--active", "--json").output)
        assert [o["order_id"] for o in orders] == ["ec-1"]
        assert "foreign_persons" in granted("orders").output

    def test_check_on_another_surface_or_for_a_stranger(self, granted: Cli) -> None:
        app_surface = granted("check", "--model", "aurora", "--person", "alice", "--surface", "app")
        stranger = granted("check", "--model", "aurora", "--person", "ghost")

        assert app_surface.exit_code == 1
        assert "deny (no_grant)" in app_surface.output
        assert stranger.exit_code == 1
        assert stranger.output.strip() == "deny (unknown_person): no person 'ghost'"
