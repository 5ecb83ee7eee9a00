"""RAMPUP_HOOK_COMMANDS: what the server may run, read once at start; anything unclear stops the start."""

import json
from pathlib import Path

import pytest

from rampup.adapters.hooks import load_commands
from rampup.errors import ConfigError


def test_commands_come_as_json_or_from_a_file(tmp_path: Path) -> None:
    value = '{"deploy-env": ["/opt/deploy.sh", "--to", "prod"], "notify.ci": ["true"]}'
    expected = {"deploy-env": ("/opt/deploy.sh", "--to", "prod"), "notify.ci": ("true",)}
    assert load_commands(value) == expected
    path = tmp_path / "hooks.json"
    path.write_text(value)
    assert load_commands(str(path)) == expected
    assert load_commands(None) == {} and load_commands("") == {}


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("/no/such/file.json", "cannot read"),
        ("{not json", "not JSON"),
        ('["deploy.sh"]', "JSON object"),
        (json.dumps({"rm -rf": ["rm"]}), "not a command name"),
        (json.dumps({"deploy": "deploy.sh --to prod"}), "list of its program and arguments"),
        (json.dumps({"deploy": []}), "list of its program and arguments"),
        (json.dumps({"deploy": ["deploy.sh", 3]}), "list of its program and arguments"),
    ],
)
def test_an_unclear_definition_stops_the_start(value: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as raised:
        load_commands(value)
    assert raised.value.where == "RAMPUP_HOOK_COMMANDS"


def test_the_example_file_is_a_valid_definition() -> None:
    example = Path(__file__).parents[2] / "examples" / "hooks" / "hook-commands.json"
    assert "deploy-env" in load_commands(str(example))
