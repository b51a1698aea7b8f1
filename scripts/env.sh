# Activate the face3d environment in the current shell:  source scripts/env.sh
#
# Activates .venv (Python 3.11 with torch and the ROS 2 Kilted wheels), sources the colcon
# workspace (install/setup.bash: face3d_msgs, face3d_ros) and puts the face3d programs
# (face3d_node, face3d-infer, face3d-demo, ...) on PATH. Run scripts/setup.sh once first.
# shellcheck shell=bash

if [ -n "${BASH_SOURCE[0]:-}" ] && [ "${BASH_SOURCE[0]}" = "$0" ]; then
    echo "scripts/env.sh must be sourced, not run:  source scripts/env.sh" >&2
    exit 1
fi

_face3d_env() {
    local root venv site lib_path part
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    venv="${root}/.venv"
    if [ ! -x "${venv}/bin/python" ] || [ ! -f "${root}/install/setup.bash" ]; then
        echo "face3d: environment not set up in ${root}; run scripts/setup.sh first." >&2
        return 1
    fi
    case ":${AMENT_PREFIX_PATH:-}:${PYTHONPATH:-}:" in
        *:/opt/ros/*)
            echo "face3d: a system ROS 2 is sourced in this shell (${ROS_DISTRO:-/opt/ros});" \
                "open a new shell, or use the system ROS 2 route in docs/install.md." >&2
            return 1
            ;;
    esac

    # shellcheck disable=SC1091
    source "${venv}/bin/activate"

    # The ROS 2 wheels install into the venv's prefix: it is the ROS prefix (ament index,
    # share/<pkg>/cmake for builds).
    case ":${AMENT_PREFIX_PATH:-}:" in *":${venv}:"*) ;; *)
        export AMENT_PREFIX_PATH="${venv}${AMENT_PREFIX_PATH:+:${AMENT_PREFIX_PATH}}" ;;
    esac
    case ":${CMAKE_PREFIX_PATH:-}:" in *":${venv}:"*) ;; *)
        export CMAKE_PREFIX_PATH="${venv}${CMAKE_PREFIX_PATH:+:${CMAKE_PREFIX_PATH}}" ;;
    esac

    # The wheels' .pth hook re-executes every Python process once with LD_LIBRARY_PATH set to
    # the wheels' libraries. Set the same paths here, in a fixed order, and mark it done: one
    # process start instead of two, and the same library order in every process.
    site="${venv}/lib/python3.11/site-packages"
    lib_path="${venv}/lib"
    for part in "${site}"/ros_*.libs; do
        [ -d "${part}" ] && lib_path="${lib_path}:${part}"
    done
    case ":${LD_LIBRARY_PATH:-}:" in *":${venv}/lib:"*) ;; *)
        export LD_LIBRARY_PATH="${lib_path}${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}" ;;
    esac
    export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1

    # colcon's setup scripts run a helper with the Python that built the workspace; name it.
    export COLCON_PYTHON_EXECUTABLE="${venv}/bin/python"
    local had_u=0
    case $- in *u*) had_u=1 ;; esac
    set +u
    # shellcheck disable=SC1091
    source "${root}/install/setup.bash"
    local rc=$?
    if [ "${had_u}" = 1 ]; then set -u; fi
    [ "${rc}" = 0 ] || { echo "face3d: sourcing install/setup.bash failed" >&2; return 1; }

    # ament_python installs console scripts into lib/<package> (for `ros2 run`); put them on
    # PATH as well, since the PyPI wheels ship no `ros2` command.
    case ":${PATH}:" in *":${root}/install/face3d_ros/lib/face3d_ros:"*) ;; *)
        export PATH="${root}/install/face3d_ros/lib/face3d_ros:${PATH}" ;;
    esac
    export FACE3D_ROOT="${root}"
    return 0
}

_face3d_env
_face3d_env_rc=$?
unset -f _face3d_env
if [ "${_face3d_env_rc}" != 0 ]; then
    unset _face3d_env_rc
    return 1
fi
unset _face3d_env_rc
