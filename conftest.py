"""Registers confsec's pytest plugin, fixtures and step definitions.

The step modules are star-imported here (pytest-bdd finds steps through fixtures; keeping them
out of test modules avoids double collection, pytest-bdd #630).
"""

pytest_plugins = ["confsec.report.plugin", "fixtures.target"]

from steps.authentication import *  # noqa: E402, F403
from steps.claims import *  # noqa: E402, F403
from steps.conference import *  # noqa: E402, F403
from steps.dialout import *  # noqa: E402, F403
from steps.dtls import *  # noqa: E402, F403
from steps.events import *  # noqa: E402, F403
from steps.floor import *  # noqa: E402, F403
from steps.interfaces import *  # noqa: E402, F403
from steps.key_confinement import *  # noqa: E402, F403
from steps.leaving import *  # noqa: E402, F403
from steps.media import *  # noqa: E402, F403
from steps.rekeying import *  # noqa: E402, F403
from steps.reoffer import *  # noqa: E402, F403
from steps.robustness_media import *  # noqa: E402, F403
from steps.robustness_signalling import *  # noqa: E402, F403
from steps.rtcp import *  # noqa: E402, F403
