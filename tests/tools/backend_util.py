"""What the tool tests share: starting `uvirtio blk` on a unix socket and
waiting until it serves there. Imported by the scripts beside it, which put
their own directory on sys.path (they run as `python3 path/to/script.py`)."""
import os
import signal
import socket
import subprocess
import time


def wait_for_socket(path, proc, seconds=20):
    """Poll until the backend accepts connections on @path: True; False if
    @proc exits first or @seconds pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if os.path.exists(path):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                return True
            except OSError:
                pass
            finally:
                s.close()
        time.sleep(0.05)
    return False


def serve_blk(exe, sock, args):
    """Start `uvirtio blk --socket-path=SOCK ARGS...` with its output piped
    (text); the caller waits for it and stops it."""
    return subprocess.Popen([exe, "blk", "--socket-path=" + sock] + args,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(proc, grace=10.0):
    """SIGTERM, then SIGKILL after @grace seconds; return the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def die_with_parent():
    """preexec_fn: the child gets SIGKILL when the test script dies, even by
    SIGKILL, so no backend or peer outlives it."""
    import ctypes
    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


class Output:
    """A child process whose stdout and stderr (merged) a thread collects,
    so the test can wait for a line or a prompt while the child runs (a
    prompt ends without a newline, so this reads chunks, not lines)."""

    def __init__(self, cmd, stdin=None, log=None):
        import threading
        self.cmd = cmd
        self.chunks = []
        self.lock = threading.Condition()
        self.log = log
        self.proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        fd = self.proc.stdout.fileno()
        while True:
            data = os.read(fd, 65536)
            with self.lock:
                if not data:
                    self.chunks.append(None)
                    self.lock.notify_all()
                    return
                self.chunks.append(data.decode(errors="replace"))
                if self.log:
                    self.log.write(self.chunks[-1])
                    self.log.flush()
                self.lock.notify_all()

    def text(self):
        with self.lock:
            return "".join(c for c in self.chunks if c is not None)

    def wait_for(self, pattern, start=0, seconds=30.0):
        """Wait until the output after offset @start matches @pattern (a
        compiled regex): the match; None when the child's output ends or
        @seconds pass first."""
        deadline = time.monotonic() + seconds
        with self.lock:
            while True:
                text = "".join(c for c in self.chunks if c is not None)
                m = pattern.search(text, start)
                if m:
                    return m
                if self.chunks and self.chunks[-1] is None:
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.lock.wait(left)

    def stop(self, grace=10.0):
        """SIGTERM, then SIGKILL after @grace seconds; the exit status."""
        rc = stop(self.proc, grace)
        self.thread.join(5)
        return rc


class Netns:
    """A network namespace of the test's own (`ip netns add NAME`), deleted
    by delete() (call it in a finally: also on failure)."""

    def __init__(self, name):
        self.name = name
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True,
                       text=True, timeout=30)

    def run(self, *cmd, check=True, timeout=60):
        """`ip netns exec NAME CMD...`: the completed process (text)."""
        return subprocess.run(["ip", "netns", "exec", self.name, *cmd], check=check,
                              capture_output=True, text=True, timeout=timeout)

    def add_tap(self, tap):
        """A multi-queue tap @tap in the namespace, no IPv6 (so no autoconf
        frame is sent on it), up, no address."""
        subprocess.run(["ip", "-n", self.name, "tuntap", "add", "dev", tap, "mode", "tap",
                        "multi_queue"], check=True, capture_output=True, text=True, timeout=30)
        self.run("sysctl", "-qw", f"net.ipv6.conf.{tap}.disable_ipv6=1")
        subprocess.run(["ip", "-n", self.name, "link", "set", tap, "up"], check=True,
                       capture_output=True, text=True, timeout=30)

    def stat(self, dev, name):
        """/sys/class/net/DEV/statistics/NAME as seen inside the namespace."""
        return int(self.run("cat", f"/sys/class/net/{dev}/statistics/{name}").stdout)

    def delete(self):
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)
