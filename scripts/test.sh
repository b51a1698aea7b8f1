#!/usr/bin/env bash
# Run all tests:  scripts/test.sh [pytest arguments...]
#
# Runs scripts/setup.sh --no-demo first (quick when everything is in place; a fresh clone sets
# itself up), activates the environment, gives this run its own ROS_DOMAIN_ID and runs pytest
# over test/. Extra arguments go to pytest, e.g.  scripts/test.sh -k ros_env -x
set -euo pipefail

# shellcheck source=scripts/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
trap face3d_on_error ERR
cd "${FACE3D_ROOT}"

FACE3D_STEP="setup (scripts/setup.sh --no-demo)"
"${FACE3D_ROOT}/scripts/setup.sh" --no-demo

face3d_step "Running the tests (pytest)"
face3d_source_relaxed "${FACE3D_ROOT}/scripts/env.sh"
# One DDS domain per run (1..101, from this process id), discovery on this host only: runs in
# parallel on one machine, and ROS 2 programs on the default domain 0, never see each other.
export ROS_DOMAIN_ID=$((1 + $$ % 101))
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export MPLBACKEND=Agg
echo "ROS_DOMAIN_ID=${ROS_DOMAIN_ID}  python: $(command -v python)"

rc=0
python -m pytest "$@" || rc=$?
FACE3D_STEP="done"
if [ "${rc}" = 5 ]; then
    printf '\nERROR: pytest collected no tests (exit code 5); a test run that tests nothing' >&2
    printf ' is a failure. Check the arguments: %s\n' "$*" >&2
    exit 1
fi
exit "${rc}"
