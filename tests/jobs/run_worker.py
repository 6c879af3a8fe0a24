"""A real arq worker process (as `gridrider worker` builds it) that also knows the test job kinds.

Without crons, so the only job it takes is the one the kill test gives it.
"""

import sys

from gridrider.cli import resolve_runtime
from gridrider.config import load_settings
from gridrider.jobs.worker import build_worker
from tests.jobs.kinds import register_test_kinds

register_test_kinds()
runtime = resolve_runtime(load_settings(), allow_embedded=False)
build_worker(runtime.settings, with_crons=False).run()
sys.exit(0)
