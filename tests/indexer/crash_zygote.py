"""A helper process for the crash tests: imports the indexer once, then forks one child per
command read from stdin, which runs an index command with ``MOMENT_SEARCH_CRASH_AT`` set and so
kills itself with SIGKILL at that crash point (see moment_search/failpoints.py).

Forking saves the ~4 s import of torch per kill. The zygote itself never runs a torch or FAISS
operation, so no OpenMP thread pool exists when it forks (forking after one is unsafe).

Protocol: one JSON object per line in, {"op", "args", "crash_at", "trace"}; one JSON object per
line out, {"status": "killed" | "ok" | "error", "error": text}.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback


def run(op: str, args: dict) -> None:
    from moment_search.indexer.build import BuildConfig, build_index
    from moment_search.indexer.edit import add_videos, remove_videos

    config = BuildConfig(**args.get("config", {}))
    if op == "build":
        build_index(args["corpus"], args["out"], args["model"], config,
                    resume=args.get("resume", False))
    elif op == "add":
        add_videos(args["corpus"], args["index"], config)
    elif op == "remove":
        remove_videos(args["index"], args["videos"])
    elif op == "update":
        from moment_search.indexer.reembed import update_videos

        update_videos(args["index"], args["videos"], config=config)
    else:
        raise ValueError(f"unknown op {op!r}")


def child(command: dict) -> None:
    import torch

    torch.set_num_threads(1)
    os.environ.pop("MOMENT_SEARCH_CRASH_AT", None)
    os.environ.pop("MOMENT_SEARCH_CRASH_TRACE", None)
    if command.get("crash_at"):
        os.environ["MOMENT_SEARCH_CRASH_AT"] = str(command["crash_at"])
    if command.get("trace"):
        os.environ["MOMENT_SEARCH_CRASH_TRACE"] = command["trace"]
    try:
        run(command["op"], command["args"])
    except Exception:  # reported to the parent, which fails the test
        with open(command["error_file"], "w") as handle:
            handle.write(traceback.format_exc())
        os._exit(3)
    os._exit(0)


def main() -> None:
    import moment_search.indexer.build  # noqa: F401 - the expensive imports, done once
    import moment_search.indexer.edit  # noqa: F401
    import moment_search.indexer.reembed  # noqa: F401

    for line in sys.stdin:
        command = json.loads(line)
        pid = os.fork()
        if pid == 0:
            child(command)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            reply = {"status": "killed"}
        elif os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            reply = {"status": "ok"}
        else:
            error = open(command["error_file"]).read() if os.path.exists(
                command["error_file"]) else f"exit status {status}"
            reply = {"status": "error", "error": error}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
