"""The JSON-lines protocol of the benchmark's Python peers (bench/torch_bench.py, bench/st_bench.py):
one request object per line on stdin, one reply per line on stdout, every reply with "ok" and, on
failure, "error". Anything else the libraries print goes to stderr so it cannot corrupt a reply."""
import json
import sys


def serve(server, commands):
    proto = sys.stdout
    sys.stdout = sys.stderr
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = None
        try:
            req = json.loads(line)
            cmd = req.get("cmd")
            if cmd == "quit":
                reply = {"ok": True}
            elif cmd in commands:
                reply = {"ok": True, **getattr(server, cmd)(req)}
            else:
                raise ValueError(f"unknown cmd {cmd!r}")
        except Exception as e:  # reported to the harness, which names the request
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        proto.write(json.dumps(reply) + "\n")
        proto.flush()
        if cmd == "quit":
            break
