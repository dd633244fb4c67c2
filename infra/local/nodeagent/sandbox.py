"""The bubblewrap sandbox a stand-in image's container runs in.

The root is a tmpfs (a container's writable layer, gone when it ends) holding the host's
/usr and /etc read-only (the image's file system, standing in for python, alpine, debian...),
its own /dev, /proc and /tmp, and the pod's volumes at their real mount paths, read-only
where the volumeMount says so. The command runs as bwrap's child in a PID namespace of its
own (so bwrap is PID 1, as with `docker run --init`) and on the host's network.

A mount point inside /usr or /etc (a volume, a new working directory, the `python` link
in /usr/local/bin) cannot be made in a read-only bind: that tree is then rebuilt as a
writable tmpfs of read-only binds of its entries, down to the mount point.
"""

from __future__ import annotations

import os
from pathlib import Path

BWRAP = Path("/usr/bin/bwrap")
READ_ONLY_TREES = ("/usr", "/etc")
ROOT_LINKS = ("bin", "lib", "lib64", "sbin")
PYTHON_LINK = ("/usr/bin/python3", "/usr/local/bin/python")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _within(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def _read_only_tree(tree: str, targets: list[str]) -> list[str]:
    """Bind `tree` read-only; where a target lies inside it, rebuild it as a tmpfs of
    read-only binds of its entries (recursively), the targets themselves left out."""
    if not any(_within(t, tree) and t != tree for t in targets):
        return ["--ro-bind", tree, tree]
    args = ["--tmpfs", tree]
    for entry in sorted(os.listdir(tree)):
        path = os.path.join(tree, entry)
        if path in targets:
            continue
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += _read_only_tree(path, targets)
        else:
            args += ["--ro-bind", path, path]
    return args


def _root_links() -> list[str]:
    args: list[str] = []
    for name in ROOT_LINKS:
        path = f"/{name}"
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def _volumes(mounts: list[tuple[str, Path]], read_only: frozenset[str]) -> list[str]:
    """The pod's volumes (and the termination message file), outermost first."""
    args: list[str] = []
    for mount_path, host in sorted(mounts, key=lambda m: m[0].rstrip("/").count("/")):
        target = mount_path.rstrip("/") or "/"
        args += ["--ro-bind" if mount_path in read_only else "--bind", str(host), target]
    return args


def bwrap_args(
    mounts: list[tuple[str, Path]],
    read_only: frozenset[str],
    working_dir: str,
    *,
    python: bool,
    status_fd: int,
) -> list[str]:
    """bwrap and its options, up to the `--` before the command. bwrap writes its child's
    exit code to `status_fd` (--json-status-fd) only once the command has run."""
    python_link = python and not os.path.lexists(PYTHON_LINK[1])
    targets = [m.rstrip("/") or "/" for m, _ in mounts]
    targets += [PYTHON_LINK[1]] if python_link else []
    targets += [working_dir] if not os.path.exists(working_dir) else []
    args = [str(BWRAP), "--tmpfs", "/"]
    for tree in READ_ONLY_TREES:
        args += _read_only_tree(tree, targets)
    args += _root_links()
    args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    args += _volumes(mounts, read_only)
    if python_link:
        args += ["--symlink", *PYTHON_LINK]
    args += ["--dir", working_dir, "--chdir", working_dir]
    args += ["--json-status-fd", str(status_fd)]
    return [*args, "--unshare-pid", "--die-with-parent", "--"]


def environment(image_env: dict[str, str], container_env: dict[str, str]) -> dict[str, str]:
    """What the command sees: the image's ENV (PATH, HOME) under the container's own;
    nothing of the node agent's environment."""
    return {"PATH": PATH, "HOME": "/root", **image_env, **container_env}
