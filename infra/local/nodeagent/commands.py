"""What a container of a stand-in image runs: the Kubernetes meaning of command and args
over the image's own ENTRYPOINT and CMD.

https://kubernetes.io/docs/tasks/inject-data-application/define-command-argument-container/#notes
`command` replaces the image's ENTRYPOINT and `args` its CMD: with a command and no args
the CMD is dropped; with args alone they follow the ENTRYPOINT. `$(VAR)` in either is the
container's variable VAR when it is defined (left as written otherwise) and `$$` is `$`
(https://kubernetes.io/docs/tasks/inject-data-application/define-interdependent-environment-variables/).
"""

from __future__ import annotations

from dataclasses import dataclass

# Containers of these repositories run for real in a sandbox (sandbox.py): the host's /usr
# stands in for their file system. The values are their images' ENTRYPOINT and CMD, as
# Docker Hub's official images declare them.
STAND_INS: dict[str, tuple[list[str], list[str]]] = {
    "python": ([], ["python3"]),
    "alpine": ([], ["/bin/sh"]),
    "busybox": ([], ["sh"]),
    "debian": ([], ["bash"]),
    "ubuntu": ([], ["/bin/bash"]),
    "bash": ([], ["bash"]),  # the image's docker-entrypoint.sh only prefixes `bash`
}
# The official images' ENV besides PATH (python sets LANG for its own build).
IMAGE_ENV: dict[str, dict[str, str]] = {"python": {"LANG": "C.UTF-8"}}
SIMULATION_PREFIX = "KUBESIM_"  # a container with any such variable asks to be simulated
# Variables that ask for a simulated container (runtime._simulate) when nothing is to run.
SIMULATION_VARS = (
    "KUBESIM_RUN_SECONDS",
    "KUBESIM_EXIT_CODE",
    "KUBESIM_LOG",
    "KUBESIM_IGNORE_SIGTERM",
)


@dataclass(frozen=True)
class Image:
    name: str  # the repository's last part: python, alpine...
    entrypoint: list[str]
    cmd: list[str]
    env: dict[str, str]


def stand_in(repository: str) -> Image | None:
    """The stand-in for an image repository (`python`, `library/python`,
    `docker.io/library/python`, `mirror.example/python`), or None."""
    last = repository.rpartition("/")[2]
    if last not in STAND_INS:
        return None
    entrypoint, cmd = STAND_INS[last]
    return Image(last, list(entrypoint), list(cmd), dict(IMAGE_ENV.get(last, {})))


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' expansion (third_party/forked/golang/expansion): `$(VAR)` when VAR is
    defined, `$$` to `$`; anything else, an unterminated `$(` included, as written."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "$" or i + 1 == len(text):
            out.append(text[i])
            i += 1
        elif text[i + 1] == "$":
            out.append("$")
            i += 2
        elif text[i + 1] == "(" and (end := text.find(")", i + 2)) != -1:
            name = text[i + 2 : end]
            out.append(env[name] if name in env else text[i : end + 1])
            i = end + 1
        else:
            out.append(text[i : i + 2])
            i += 2
    return "".join(out)


def argv(image: Image, command: list[str], args: list[str], env: dict[str, str]) -> list[str]:
    """The process a container runs: KUBESIM_SH through /bin/sh -c when it is set, else
    command/args over the image's ENTRYPOINT/CMD, expanded."""
    if "KUBESIM_SH" in env:
        return ["/bin/sh", "-c", env["KUBESIM_SH"]]
    head = command if command else image.entrypoint
    tail = args if (command or args) else image.cmd
    return [expand(part, env) for part in head + tail]


def simulated(command: list[str], args: list[str], env: dict[str, str]) -> bool:
    """A stand-in container with nothing of its own to run and KUBESIM_* simulation
    variables is simulated, as every container of another image is."""
    if command or args or "KUBESIM_SH" in env:
        return False
    return any(name in env for name in SIMULATION_VARS)
