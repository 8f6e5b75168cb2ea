"""The channels and egress sections of the worker's configuration file: each problem one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from activities import open_adapters
from gatekeeper.channels import CONFIGURABLE_TYPES
from gatekeeper.channels.email import EmailSettings
from gatekeeper.channels.file import FileSettings
from gatekeeper.channels.webhook import WebhookSettings
from gatekeeper.config import WorkerConfig, load_worker_config
from gatekeeper.errors import ConfigError
from gatekeeper.models.policy import NotificationPolicy
from gatekeeper.routing import unconfigured_channels
from gatekeeper.settings import Settings
from tests import factories
from tests.adapters.builders import write_worker_config

HOOK = {"type": "webhook", "url": "https://hooks.lab.example/gk", "secret_env": "GK_HOOK"}
MAIL = {"type": "email", "smtp_host": "smtp.lab.example", "sender": "gatekeeper@lab.example"}
DROP = {"type": "file", "directory": "/srv/gatekeeper/notices"}
TYPES = ", ".join(CONFIGURABLE_TYPES)


def load(
    tmp_path: Path, channels: dict[str, dict[str, object]], allow: tuple[str, ...] = ()
) -> WorkerConfig:
    return load_worker_config(
        write_worker_config(tmp_path / "gatekeeper.toml", channels, allow), required=True
    )


class TestChannels:
    """A webhook needs an http(s) url without credentials and a secret variable; an e-mail
    channel needs an SMTP host and a sender; a file channel an absolute directory; fields of
    another type, unknown or built-in types, built-in names and secrets written in place of a
    variable's name are refused, each in one line naming the field."""

    def test_valid_channels_load(self, tmp_path: Path) -> None:
        config = load(tmp_path, {"hook": HOOK, "mail": {**MAIL, "smtp_port": 587}, "drop": DROP})

        assert isinstance(config.channels["hook"], WebhookSettings)
        assert config.channels["hook"].host == "hooks.lab.example"
        assert isinstance(config.channels["mail"], EmailSettings)
        assert config.channels["mail"].host == "smtp.lab.example"
        assert isinstance(config.channels["drop"], FileSettings)
        assert config.channels["drop"].directory == Path("/srv/gatekeeper/notices")

    @pytest.mark.parametrize(
        ("channel", "message"),
        [
            (
                {**HOOK, "url": "ftp://hooks.lab.example/"},
                "hook.url: must be an http:// or https://",
            ),
            (
                {**HOOK, "url": "https://u:p@hooks.lab.example/"},
                "hook.url: must not carry credentials",
            ),
            ({**HOOK, "url": "https:///nohost"}, "hook.url: must name a host"),
            ({**HOOK, "url": "https://hooks.lab.example:99999/"}, "hook.url: has an invalid port"),
            (
                {"type": "webhook", "url": "https://hooks.lab.example/"},
                "webhook channels need secret_env",
            ),
            ({"type": "webhook", "secret_env": "X"}, "webhook channels need url"),
            ({**HOOK, "sender": "a@b.example"}, "sender does not apply to webhook channels"),
            ({**HOOK, "secret_env": "s3cr3t value!"}, "hook.secret_env: must be the name of"),
            ({**MAIL, "sender": "nobody"}, "hook.sender: must be an e-mail address"),
            ({**MAIL, "sender": "a@b.example\r\nBcc: x@y"}, "must not contain control characters"),
            ({**MAIL, "smtp_host": "smtp host"}, "hook.smtp_host: must be a host name"),
            ({"type": "email", "smtp_host": "smtp.lab.example"}, "email channels need sender"),
            ({**MAIL, "url": "https://x.example/"}, "url does not apply to email channels"),
            ({"type": "pager"}, f"hook.type: 'pager' is not a channel type (one of {TYPES})"),
            ({"url": "https://x.example/"}, f"hook.type: is missing (one of {TYPES})"),
            ({"type": ["webhook"]}, "hook.type: \"['webhook']\" is not a channel type"),
            ({"type": "log"}, "hook.type: 'log' is built in: route to the channel 'log' itself"),
            ({"type": "file"}, "hook: file channels need directory"),
            ({**DROP, "directory": "notices"}, "hook.directory: must be an absolute path"),
            ({**DROP, "url": "https://x.example/"}, "hook: url does not apply to file channels"),
            ({**HOOK, "colour": "red"}, "hook: colour does not apply to webhook channels"),
        ],
    )
    def test_refused(self, tmp_path: Path, channel: dict[str, object], message: str) -> None:
        with pytest.raises(ConfigError) as caught:
            load(tmp_path, {"hook": channel})

        text = str(caught.value)
        assert message in text and "\n" not in text
        assert text.startswith(f"{tmp_path / 'gatekeeper.toml'}: channels.")

    @pytest.mark.parametrize("name", ["log", "outbox"])
    def test_built_in_names_are_refused(self, tmp_path: Path, name: str) -> None:
        with pytest.raises(ConfigError, match=f"channels.{name}: '{name}' is built in"):
            load(tmp_path, {name: HOOK})


class TestEgressAtLoad:
    """A channel whose destination is a literal loopback, private, link-local or metadata address,
    or a metadata host name, is refused at load unless ``[egress] allow_hosts`` lists it."""

    @pytest.mark.parametrize(
        ("channel", "field", "problem"),
        [
            (
                {**HOOK, "url": "http://169.254.169.254/latest/meta-data"},
                "url",
                "a cloud metadata address",
            ),
            ({**HOOK, "url": "http://[fd00:ec2::254]/"}, "url", "a cloud metadata address"),
            ({**HOOK, "url": "http://metadata.google.internal/x"}, "url", "a cloud metadata host"),
            ({**HOOK, "url": "http://127.0.0.1:8080/"}, "url", "a loopback address"),
            ({**HOOK, "url": "http://[::ffff:10.0.0.1]/"}, "url", "a private address"),
            ({**MAIL, "smtp_host": "192.168.0.25"}, "smtp_host", "a private address"),
        ],
    )
    def test_refused(
        self, tmp_path: Path, channel: dict[str, object], field: str, problem: str
    ) -> None:
        with pytest.raises(ConfigError) as caught:
            load(tmp_path, {"hook": channel})

        assert str(caught.value) == (
            f"{tmp_path / 'gatekeeper.toml'}: channels.hook.{field}: the destination is {problem}; "
            "destinations outside the public internet must be listed in [egress] allow_hosts"
        )

    def test_listed_destinations_load(self, tmp_path: Path) -> None:
        config = load(
            tmp_path,
            {
                "hook": {**HOOK, "url": "http://127.0.0.1:8080/"},
                "mail": {**MAIL, "smtp_host": "10.0.0.7"},
            },
            allow=("127.0.0.1", "10.0.0.0/24"),
        )

        assert sorted(config.channels) == ["hook", "mail"]

    def test_a_bad_allow_hosts_entry_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"egress\.allow_hosts: 'not a host'"):
            load(tmp_path, {}, allow=("not a host",))


class TestUnconfiguredChannels:
    """The channel names a policy routes to that the worker does not define (log and outbox are
    always defined), for the worker to refuse such a policy when a release starts."""

    def test_names(self, tmp_path: Path) -> None:
        config = load(tmp_path, {"hook": HOOK})
        routes = [
            {"events": ["*"], "to": {"concerned": True}, "channels": ["outbox", "hook", "pager"]},
            {"events": ["launched"], "to": {"concerned": True}, "channels": ["log", "sms"]},
        ]
        policy = factories.policy(
            notifications=NotificationPolicy.model_validate({"routes": routes})
        )

        assert unconfigured_channels(policy, config) == ["pager", "sms"]
        assert unconfigured_channels(factories.policy(), config) == []


class TestSecretsAtWorkerStart:
    """A worker whose configuration names a secret variable that is not set does not start; the
    error names the channel and the variable, never a value."""

    def test_unset_variable_stops_the_worker(self, tmp_path: Path) -> None:
        config = load(tmp_path, {"hook": HOOK})
        settings = Settings(data_dir=tmp_path / "data", config=config, env={"OTHER": "x"})

        with pytest.raises(ConfigError) as caught:
            open_adapters(settings)

        assert str(caught.value) == (
            "channel 'hook': the variable GK_HOOK named by its secret_env is not set in the "
            "worker's environment"
        )

    def test_set_variable_opens(self, tmp_path: Path) -> None:
        config = load(tmp_path, {"hook": HOOK})
        adapters = open_adapters(
            Settings(data_dir=tmp_path / "data", config=config, env={"GK_HOOK": "value"})
        )
        adapters.close()


class TestExample:
    """The example configuration shipped in examples/ loads."""

    def test_example_loads(self) -> None:
        example = Path(__file__).parent.parent / "examples" / "gatekeeper.toml"
        config = load_worker_config(example, required=True)

        assert sorted(config.channels) == ["reviewers-mail", "security-hook"]
