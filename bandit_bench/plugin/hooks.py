"""The plugin's old module name, kept for installs made before it became ``plugin.py``.

An editable install records its ``pytest11`` entry point when it is installed: one made before
the rename still names ``bandit_bench.plugin.hooks`` until it is reinstalled
(``pip install -e .``). This module hands it the plugin's hooks. Nothing else imports it;
delete it at the next release.
"""

from __future__ import annotations

from bandit_bench.plugin.plugin import *  # noqa: F403 - the pytest_* hook functions
