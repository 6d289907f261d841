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
