"""Running a face3d lifecycle node as a process: the one ``main`` of ``face3d_node`` and
``face3d_people``.

Exit status: 0 after Ctrl-C, SIGTERM or the shutdown transition; 1 when autostart's configure
or activate fails (the error says what to fix); 2 when a parameter value given at start is
invalid (one FATAL line per parameter, naming it, its value and the range, also for a ``-p``
that rcl dropped silently because its type differs from the params file's value).

Signals: SIGINT and SIGTERM only end the wait of the main thread; the node's own work is
stopped (``shutdown_processing``: the processing thread, a running goal), the executor stopped
and the node destroyed while the ROS context is still valid (rclpy's own handlers shut the
context down first, so a frame being published then ended in an ERROR traceback).
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Callable, Optional, Sequence

import rclpy
import rclpy.logging
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn

from face3d_ros.ros.param_spec import ParameterStartupError, ParamSpec, unapplied_cli_values

try:  # Humble and newer
    from rclpy.signals import SignalHandlerOptions
except ImportError:  # pragma: no cover - older rclpy
    SignalHandlerOptions = None


def run_node(make_node: Callable[[], object], name: str, specs: Sequence[ParamSpec],
             threads: int, args: Optional[Sequence[str]] = None) -> int:
    """Create the node with ``make_node`` (a lifecycle node with ``autostart``, ``finished``
    and ``shutdown_processing``), check its start-up parameters against ``specs``, configure
    and activate it with autostart, spin it on a ``threads``-thread executor until a signal
    or the shutdown transition, then tear it down; returns the exit status."""
    argv = list(sys.argv if args is None else args)
    stop = threading.Event()
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except (TypeError, AttributeError):  # pragma: no cover - rclpy without the option
        rclpy.init(args=args)
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, lambda *_: stop.set())
    log = rclpy.logging.get_logger(name)
    node = None
    executor = None
    spinner: Optional[threading.Thread] = None
    code = 0
    try:
        try:
            node = make_node()
        except ParameterStartupError as exc:
            for problem in exc.problems:
                log.fatal(f"Cannot start: {problem}; fix the params file or the -p argument")
            return 2
        log = node.get_logger()
        actual = {s.name: node.get_parameter(s.name).value for s in specs}
        unapplied = unapplied_cli_values(argv, actual, specs)
        if unapplied:
            for problem in unapplied:
                log.fatal(f"Cannot start: {problem}")
            return 2
        if node.autostart:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                log.fatal("Configure failed (see the error above); exiting")
                code = 1
            elif node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                log.fatal("Activate failed (see the error above); exiting")
                code = 1
        if code == 0:
            # The executor spins in its own thread; this (main) thread waits for a signal
            # (handled at once: waiting on an Event is interruptible, a spin blocked in
            # rcl_wait is not) or the shutdown transition.
            executor = MultiThreadedExecutor(num_threads=threads)
            executor.add_node(node)
            spinner = threading.Thread(target=executor.spin, name=f"{name}_executor",
                                       daemon=True)
            spinner.start()
            while not (stop.is_set() or node.finished.is_set()) and spinner.is_alive():
                stop.wait(0.2)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.shutdown_processing()
        if executor is not None:
            executor.shutdown(timeout_sec=5.0)
            if spinner is not None:
                spinner.join(timeout=5.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return code
