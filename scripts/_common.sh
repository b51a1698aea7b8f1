# Shared helpers for scripts/setup.sh and scripts/test.sh. Sourced, not run.
# shellcheck shell=bash

FACE3D_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FACE3D_VENV="${FACE3D_ROOT}/.venv"
FACE3D_STEP="(start)"

# Print a step header and remember the step's name for the failure message.
face3d_step() {
    FACE3D_STEP="$*"
    printf '\n==> %s\n' "$*"
}

# Print an error naming the current step and what to do, then exit 1.
face3d_die() {
    printf '\nERROR [%s]: %s\n' "${FACE3D_STEP}" "$*" >&2
    exit 1
}

# ERR trap: any failing command names the step it failed in.
face3d_on_error() {
    local rc=$?
    printf '\nERROR: step "%s" failed (exit code %d, at %s line %s).\n' \
        "${FACE3D_STEP}" "${rc}" "${BASH_SOURCE[1]:-?}" "${BASH_LINENO[0]:-?}" >&2
    printf 'See docs/install.md, section "Troubleshooting".\n' >&2
    exit "${rc}"
}

# Source a file written for interactive shells (colcon's setup.bash, venv activate) from a
# script running under `set -euo pipefail`: those files read unset variables.
face3d_source_relaxed() {
    local had_u=0
    case $- in *u*) had_u=1 ;; esac
    set +u
    # shellcheck disable=SC1090
    source "$@"
    local rc=$?
    if [ "${had_u}" = 1 ]; then set -u; fi
    return "${rc}"
}
