"""The deployment's reverse proxy, run from outside the service as the tests and the proofs run
it: nginx on deploy/nginx.conf, changed only where a run must (the lines marked `proofs:`, and
any directive a caller sets to another value), in front of instances already listening.
`start` returns a LiveServer once nginx answers /health through them; `stop` ends it."""

import re
import resource
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from threading import Event

from harness import live_server
from harness.live_server import LiveServer, free_port
from harness.migrations import ROOT

NGINX_CONF = ROOT / "deploy" / "nginx.conf"
NGINX_PORT_LINE = re.compile(r"^(\s*)listen 8000( [^;]*)?;.*$", re.MULTILINE)
NGINX_UPSTREAM_LINE = re.compile(r"^(\s*)server api:8000;.*$", re.MULTILINE)
NGINX_RLIMIT_LINE = re.compile(r"^worker_rlimit_nofile (\d+);.*$", re.MULTILINE)
NGINX_ACCESS_LOG = "/var/log/nginx/access.log"
INSTALL_HINT = "nginx is not installed (Debian: apt-get install nginx)"


def nginx_binary() -> str | None:
    """nginx on PATH, or where Debian's package puts it (not on every shell's PATH)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")


def render_nginx_conf(
    conf: str,
    *,
    port: int,
    upstreams: Sequence[str],
    files: Path,
    logs: Path,
    location: Sequence[str] = (),
    directives: Mapping[str, str] | None = None,
) -> str:
    """deploy/nginx.conf as this run needs it: the lines marked `proofs:` changed (a loopback
    port, these upstream addresses, the run's own files, a descriptor limit this machine
    allows), each of `directives` (name → value) set to its value where the file sets it, the
    rest as deployed; `location` adds directives to `location /`. Fails if the file no longer
    has a line this expects, rather than run some other configuration."""

    def once(pattern: re.Pattern[str] | str, replace: Callable[[re.Match[str]], str]) -> None:
        nonlocal conf
        regex = re.compile(re.escape(pattern)) if isinstance(pattern, str) else pattern
        conf, count = regex.subn(replace, conf)
        if count != 1:
            raise RuntimeError(f"{NGINX_CONF}: {count} matches for {regex.pattern}, not one")

    once(NGINX_PORT_LINE, lambda m: f"{m[1]}listen 127.0.0.1:{port}{m[2] or ''};")
    once(NGINX_UPSTREAM_LINE, lambda m: "\n".join(f"{m[1]}server {up};" for up in upstreams))
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    allowed = hard if hard != resource.RLIM_INFINITY else None
    once(
        NGINX_RLIMIT_LINE, lambda m: f"worker_rlimit_nofile {min(int(m[1]), allowed or int(m[1]))};"
    )
    once(NGINX_ACCESS_LOG, lambda _: str(logs / "nginx-access.log"))

    def set_directive(name: str, value: str) -> None:
        line = re.compile(rf"^(\s*){re.escape(name)} [^;]*;", re.MULTILINE)
        once(line, lambda m: f"{m[1]}{name} {value};")

    for name, value in (directives or {}).items():
        set_directive(name, value)
    # Temp files in the run's own directory (the packaged paths may not exist, or be shared).
    temp = " ".join(
        f"{kind}_temp_path {files / kind};" for kind in ("client_body", "proxy", "fastcgi")
    )
    temp += f" uwsgi_temp_path {files / 'uwsgi'}; scgi_temp_path {files / 'scgi'};"
    once(re.compile(r"^http \{$", re.MULTILINE), lambda _: f"http {{\n    {temp}")
    if location:
        added = "".join(f"\n            {directive};" for directive in location)
        once("            proxy_pass http://api;", lambda m: m[0] + added)
    return conf


def start(
    name: str,
    *,
    upstreams: Sequence[int],
    root: Path,
    logs: Path,
    location: Sequence[str] = (),
    directives: Mapping[str, str] | None = None,
    abandon: Event | None = None,
) -> LiveServer:
    """nginx on the rendered deploy/nginx.conf in front of the instances on these loopback
    ports, its files under `root` (made here), its error log and access log in `logs`."""
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError(INSTALL_HINT)
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # nginx's workers run as another user
    logs.mkdir(parents=True, exist_ok=True)
    conf = root / "nginx.conf"
    conf.write_text(
        render_nginx_conf(
            NGINX_CONF.read_text(),
            port=port,
            upstreams=[f"{live_server.HOST}:{up}" for up in upstreams],
            files=root,
            logs=logs,
            location=location,
            directives=directives,
        )
    )
    # -e: the error log from the first line on (before the config is read, too), in the
    # file its output goes to; -g: what a container's nginx has from its image.
    log = logs / f"{name}.log"
    command = [binary, "-p", str(root), "-c", str(conf), "-e", str(log)]
    command += ["-g", f"daemon off; pid {root / 'nginx.pid'}; error_log {log} warn;"]
    return live_server.start(name, command=command, env={}, port=port, log=log, abandon=abandon)
