# SPDX-License-Identifier: MIT
"""The test scripts' client for a running VM's control socket (vireo run --api-sock PATH)."""
import json
import socket


def status(path, timeout=5.0):
    """Send "status" and return the VM's status JSON as a dict. Raises OSError when the socket
    cannot be reached and ValueError when the answer is not JSON."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(b"status\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    return json.loads(data)
