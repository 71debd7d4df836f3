#!/usr/bin/env bash
# The whole check: set-up, lint, types and every test. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3.12 -m venv .venv 2>/dev/null || python -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
# The device tests' sound server: PortAudio and PulseAudio (apt-get, as root, when missing), started with a
# null sink and a virtual source on its monitor. CI must run those tests; elsewhere they are skipped if it fails.
if [ "${CI:-}" = true ]; then
    bash tools/pulse.sh
else
    bash tools/pulse.sh || echo "tools/test.sh: no sound server, the PulseAudio device tests will be skipped" >&2
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python tools/pytest_exit.py "$@"
# The livekit-agents extra pins its own livekit (1.8.9: livekit==1.1.21, older than the main venv's): a second
# venv runs the agents job tests and the room and track tests again on that livekit (reused when it exists).
if [ ! -x .venv-agents/bin/python ]; then
    python3.12 -m venv .venv-agents 2>/dev/null || python -m venv .venv-agents
fi
.venv-agents/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,livekit-agents]'
# livekit-agents' job contexts make a temporary folder they never clean up (JobContext._tempdir); the warning its
# finalizer gives when the garbage collector gets to it, in whatever test runs then, is the library's, not ours.
.venv-agents/bin/python tools/pytest_exit.py -q -p no:cacheprovider \
    -W "ignore:Implicitly cleaning up <TemporaryDirectory:ResourceWarning" \
    tests/nodes/test_livekit_job.py tests/nodes/test_livekit_room.py tests/nodes/test_livekit_out.py \
    tests/core/test_asyncio_host.py
