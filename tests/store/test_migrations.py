"""Migrations landed from parallel branches must still form one line: two files taking the same number, or one
pointing at a revision that is gone, stop every server from starting."""

import re

from alembic.config import Config
from alembic.script import ScriptDirectory

from rampup.adapters.storage.engine import MIGRATIONS


def test_the_migrations_form_one_line_numbered_like_their_files() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    scripts = ScriptDirectory.from_config(config)

    assert scripts.get_heads() == [max(s.revision for s in scripts.walk_revisions())]
    chain = [s.revision for s in reversed(list(scripts.walk_revisions()))]
    assert chain == [f"{n:04d}" for n in range(1, len(chain) + 1)]
    for script in scripts.walk_revisions():
        assert script.path is not None
        assert re.match(rf".*/{script.revision}_\w+\.py$", script.path), script.path
