"""The kiosk under systemd (deploy/mpox-kiosk.service, Type=notify): readiness, a watchdog
that only a working loop feeds, and a status line for `systemctl status`.

- READY=1 once the model is loaded (this output exists only after the Kiosk is built) and
  the first frame went through the loop;
- WATCHDOG=1 at most every WatchdogSec/2, and only if frames were processed since the last
  ping: a stalled camera (the loop runs on, the frame count does not move) or a stuck
  inference (the loop calls nothing at all) stops the pings, and systemd restarts the kiosk;
- STATUS= a line a technician reads (state, camera, fps, screenings, last problem), every
  STATUS_EVERY_S and when the camera comes or goes;
- STOPPING=1 when the kiosk closes its outputs; RELOADING=1 instead when it stops to start again
  on a new model: `mpox kiosk run` then execs itself in the same process (edge/cli.py), whose
  READY=1 ends the reload. For that start the watchdog is stretched to RESTART_ALLOWANCE_S (a
  Pi compiles the model in seconds, more than WatchdogSec/2 after the last ping), and put back
  to WatchdogSec with READY=1.

Messages go through the pinned sdnotify package (one datagram socket, connected once).
Active only when systemd started us ($NOTIFY_SOCKET); open_outputs decides.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping

from sdnotify import SystemdNotifier

from edge.events import CameraLost, Event, KioskStatus, Stopped, status_fields

log = logging.getLogger(__name__)
STATUS_EVERY_S = 5.0  # systemctl status is read by people: a new line this often is plenty
RESTART_ALLOWANCE_S = 120.0  # the watchdog while the kiosk starts again on a new model (TimeoutStartSec= in the unit)


def watchdog_seconds(env: Mapping[str, str]) -> float | None:
    """WatchdogSec= as systemd passes it ($WATCHDOG_USEC, for $WATCHDOG_PID if set), or None."""
    usec, pid = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        seconds = int(usec) / 1e6
    except ValueError:
        log.error("WATCHDOG_USEC=%r is not a number of microseconds: no watchdog pings", usec)
        return None
    return seconds if seconds > 0 else None


def one_line(text: str) -> str:
    """Safe inside a notify message: a newline would start another assignment (a camera's
    error text must never say READY=1), and sdnotify encodes latin-1, so ASCII only."""
    return " ".join(text.split()).encode("ascii", "replace").decode()


def status_line(st: KioskStatus, problem: str) -> str:
    f = status_fields(st)
    camera = "camera ok" if f["camera_ok"] else f"camera unavailable: {f['camera_problem']}"
    return one_line(f"{f['state']}; {camera}; {f['fps']:.1f} fps; {f['screenings']} screenings; last problem: {problem}")


class SystemdNotify:
    """A subscriber speaking the sd_notify protocol; every call is O(1) and sends at most two datagrams."""

    def __init__(self, notifier: SystemdNotifier, watchdog_s: float | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.notifier = notifier
        self.watchdog_s = watchdog_s
        self.ping_every = watchdog_s / 2 if watchdog_s else None
        self.clock = clock
        self.ready = False
        self.problem = "none"
        self._pinged_at = self._status_at = 0.0
        self._pinged_frames = 0
        self._camera_ok: bool | None = None
        self._farewell = "stopping"
        self._restarting = False
        self._failed = False

    @classmethod
    def from_environment(cls) -> SystemdNotify | None:
        """Connected to $NOTIFY_SOCKET, or None (logged) when the socket cannot be reached."""
        try:
            notifier = SystemdNotifier(debug=True)  # debug: raise, so a failure is logged, not swallowed
        except (OSError, TypeError) as e:
            log.error("cannot reach systemd at NOTIFY_SOCKET=%s (%s): no readiness or watchdog",
                      os.environ.get("NOTIFY_SOCKET"), e)
            return None
        watchdog_s = watchdog_seconds(os.environ)
        log.info("systemd notify on; watchdog %s", f"every {watchdog_s / 2:g} s" if watchdog_s else "off")
        return cls(notifier, watchdog_s)

    def send(self, message: str) -> None:
        try:
            self.notifier.notify(message)
        except OSError as e:
            if not self._failed:  # once: the kiosk goes on, systemd will notice the silence
                self._failed = True
                log.error("systemd notify failed: %s (screening goes on)", e)

    def on_event(self, event: Event) -> None:
        match event:  # everything else is in the status
            case CameraLost(at=at, reason=reason):
                self.problem = f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(at))} camera lost: {reason}"
            case Stopped(screenings=n, restarting=restarting):
                self._restarting = restarting
                self._farewell = (f"starting again on the model now current, after {n} screenings" if restarting
                                  else f"stopping after {n} screenings")

    def on_status(self, st: KioskStatus) -> None:
        now = self.clock()
        if not self.ready:
            if st.frames == 0:
                return  # loaded, but no frame through the loop yet
            self.ready, self._pinged_at, self._pinged_frames = True, now, st.frames
            watchdog = f"WATCHDOG_USEC={int(self.watchdog_s * 1e6)}\n" if self.watchdog_s else ""  # back from a restart's allowance
            self._send_status(st, now, f"READY=1\n{watchdog}")
            return
        if self.ping_every and st.frames != self._pinged_frames and now - self._pinged_at >= self.ping_every:
            self._pinged_at, self._pinged_frames = now, st.frames
            self.send("WATCHDOG=1")
        if now - self._status_at >= STATUS_EVERY_S or st.camera_ok != self._camera_ok:
            self._send_status(st, now)

    def _send_status(self, st: KioskStatus, now: float, prefix: str = "") -> None:
        self._status_at, self._camera_ok = now, st.camera_ok
        self.send(f"{prefix}STATUS={status_line(st, self.problem)}")

    def close(self) -> None:
        if self._restarting:  # the same process goes on (an exec): systemd is told it reloads, not stops
            monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            watchdog = f"\nWATCHDOG=1\nWATCHDOG_USEC={int(RESTART_ALLOWANCE_S * 1e6)}" if self.watchdog_s else ""
            self.send(f"RELOADING=1\nMONOTONIC_USEC={monotonic_usec}{watchdog}\nSTATUS={self._farewell}")
        else:
            self.send(f"STOPPING=1\nSTATUS={self._farewell}")
