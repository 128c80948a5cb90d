"""The gallery's container image on a Docker engine of this run's own: tests/test_container.py and
`benchmarks/serve.py --target container` build and run it through here.

The engine is a dockerd started as root with all its state in a temporary folder. Its containers use the
host's network (no bridge, no firewall rules), so it changes nothing outside that folder and runs beside any
other engine. No registry is needed: the base image is a minimal Debian bookworm made with mmdebstrap.
"""
import http.client
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGE = "shoplens-gallery"
BASE_IMAGE = "shoplens-base:bookworm"
# The certificates this machine adds to the distribution's (update-ca-certificates reads them from here), such
# as a TLS-intercepting proxy's: pip in the build must trust them too.
LOCAL_CA_CERTS = Path("/usr/local/share/ca-certificates")


class Unavailable(Exception):
    """No Docker engine can run here; the message says why."""


class Engine:
    """A dockerd of its own: ``with Engine() as engine: engine.docker("ps")``.

    Raises :class:`Unavailable` on start where there is no dockerd, no root, or the daemon does not come up.
    """

    def __init__(self):
        self.folder = self.process = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self, timeout=60):
        missing = [name for name in ("dockerd", "docker") if shutil.which(name) is None]
        if missing:
            raise Unavailable(f"no {' or '.join(missing)} command (Debian: apt-get install docker.io)")
        if os.geteuid() != 0:
            raise Unavailable("dockerd must run as root")
        # A short path: the daemon's unix sockets live under it, and a socket path has at most 107 characters.
        self.folder = Path(tempfile.mkdtemp(prefix="shoplens-docker-", dir="/tmp"))
        socket = self.folder / "docker.sock"
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{socket}", "DOCKER_BUILDKIT": "0"}
        with open(self.folder / "dockerd.log", "wb") as log:
            self.process = subprocess.Popen(
                ["dockerd", "--data-root", self.folder / "root", "--exec-root", self.folder / "exec",
                 "--host", f"unix://{socket}", "--pidfile", self.folder / "docker.pid",
                 "--bridge", "none", "--iptables=false", "--ip6tables=false"],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                reason = f"dockerd exited with status {self.process.returncode}: {self.log_tail()}"
                self.stop()
                raise Unavailable(reason)
            if self.docker("version", check=False, timeout=10).returncode == 0:
                return
            time.sleep(0.5)
        reason = f"dockerd did not answer within {timeout} s: {self.log_tail()}"
        self.stop()
        raise Unavailable(reason)

    def docker(self, *args, check=True, timeout=120):
        """Run the docker client against this engine; the finished process (an error with its output if
        ``check`` and it failed)."""
        result = subprocess.run(["docker", *map(str, args)], env=self.env, capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode:
            raise RuntimeError(f"docker {args[0]} failed ({result.returncode}):\n{result.stdout[-3000:]}"
                               f"{result.stderr[-3000:]}")
        return result

    def log_tail(self, lines=5):
        try:
            return " / ".join((self.folder / "dockerd.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "no log"

    def stop(self):
        """Remove every container, stop the daemon and delete its folder."""
        if self.process is not None and self.process.poll() is None:
            ids = self.docker("ps", "--all", "--quiet", check=False, timeout=30).stdout.split()
            if ids:
                self.docker("rm", "--force", *ids, check=False, timeout=60)
            self.process.terminate()  # the daemon unmounts its layers as it stops
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.folder is not None:
            # The daemon leaves its network namespace mounted in its folder.
            with open("/proc/self/mounts") as mounts:
                inside = [line.split()[1] for line in mounts if line.split()[1].startswith(f"{self.folder}/")]
            for mount in sorted(inside, reverse=True):
                subprocess.run(["umount", mount], capture_output=True)
            shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = self.process = None


def base_image(engine, tag=BASE_IMAGE):
    """Make a minimal Debian bookworm with python3 and its venv module (about a minute) and import it as ``tag``."""
    if shutil.which("mmdebstrap") is None:
        raise Unavailable("no mmdebstrap command to make a base image without a registry "
                          "(Debian: apt-get install mmdebstrap)")
    rootfs = engine.folder / "rootfs.tar"
    result = subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase",
                             "--include=python3,python3-venv,ca-certificates", "bookworm", rootfs],
                            capture_output=True, text=True, timeout=900)
    if result.returncode:
        raise RuntimeError(f"mmdebstrap failed ({result.returncode}):\n{result.stderr[-3000:]}")
    engine.docker("import", rootfs, tag, timeout=300)
    rootfs.unlink()
    return tag


def build_image(engine, base=BASE_IMAGE, tag=IMAGE, timeout=1800):
    """Build the gallery's image from this checkout on ``base`` with the legacy builder; return ``tag``."""
    certs = "".join(path.read_text() for path in sorted(LOCAL_CA_CERTS.glob("*.crt")))
    engine.docker("build", "--network", "host", "--build-arg", f"BASE_IMAGE={base}",
                  *(["--build-arg", f"EXTRA_CA_CERTS={certs}"] if certs else []), "--tag", tag, REPO,
                  timeout=timeout)
    return tag


def image_size(engine, tag=IMAGE):
    """The image's size in bytes, as `docker image ls` shows it."""
    return int(engine.docker("image", "inspect", "--format", "{{.Size}}", tag).stdout)


def run_gallery(engine, project, port, tag=IMAGE, name="shoplens-gallery", command=(), timeout=180):
    """Serve ``project`` (mounted read-only) from the image on 127.0.0.1:``port``, as compose.yaml runs it (the
    container's own files read-only too, /tmp in memory), with ``command`` instead of the image's if given;
    return the container's name once it answers."""
    engine.docker("run", "--detach", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp",
                  "--env", "SHOPLENS_HOST=127.0.0.1", "--env", f"SHOPLENS_PORT={port}",
                  "--volume", f"{Path(project).resolve()}:/project:ro", tag, *command)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if engine.docker("inspect", "--format", "{{.State.Running}}", name).stdout.strip() != "true":
            logs = engine.docker("logs", name, check=False)
            raise RuntimeError(f"the gallery's container stopped:\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/api/health")
            if connection.getresponse().status == 200:
                return name
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.5)
    raise RuntimeError(f"the gallery did not answer on port {port} within {timeout} s")


def stop_gallery(engine, name="shoplens-gallery"):
    """``docker stop`` the container; return the seconds it took and the container's exit status."""
    started = time.perf_counter()
    engine.docker("stop", name)
    seconds = time.perf_counter() - started
    return seconds, int(engine.docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout)
