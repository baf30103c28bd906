"""Modal's configuration objects: images, secrets, volumes, retries and schedules.

In wasmhost they are descriptions: the build reads `Image.pip_install(...)` from the
source, the host provides secrets and volumes, and the rest goes into the manifest.
"""


class Image:
    """A container image in Modal; here only the Python packages it lists matter, and the
    build reads those from the source (``pip_install``) or ``requirements.txt``."""

    def __init__(self, packages=()):
        self.packages = list(packages)

    @staticmethod
    def debian_slim(python_version=None):
        """An image to add packages to."""
        return Image()

    @staticmethod
    def from_registry(tag, **kwargs):
        """Accepted for compatibility; the component has no OS image."""
        return Image()

    def pip_install(self, *packages, **kwargs):
        """Lists packages the component bundles (read by the build from the source)."""
        flat = []
        for p in packages:
            flat.extend([p] if isinstance(p, str) else list(p))
        return Image(self.packages + flat)

    def uv_pip_install(self, *packages, **kwargs):
        """Same as :meth:`pip_install`."""
        return self.pip_install(*packages, **kwargs)

    def pip_install_from_requirements(self, path, **kwargs):
        """Accepted; the build reads ``requirements.txt`` beside the app."""
        return self

    def _noop(self, *args, **kwargs):
        return self

    apt_install = run_commands = env = add_local_dir = add_local_file = add_local_python_source = _noop
    workdir = entrypoint = run_function = _noop


class Secret:
    """A named secret of the host; its keys become environment variables."""

    def __init__(self, name):
        self.name = name

    @staticmethod
    def from_name(name, **kwargs):
        """The host's secret called ``name`` (create it with ``wasmhost secret``)."""
        return Secret(name)

    @staticmethod
    def from_dict(values=None, **kwargs):
        raise ValueError(
            "Secret.from_dict is not supported by wasmhost: create a named secret on the "
            "host and use Secret.from_name(name)"
        )


class Volume:
    """A named volume of the host, mounted as a directory."""

    def __init__(self, name):
        self.name = name

    @staticmethod
    def from_name(name, create_if_missing=False, **kwargs):
        """The host's volume called ``name``."""
        return Volume(name)

    def commit(self):
        """Writes are visible at once in wasmhost; nothing to do."""

    def reload(self):
        """Reads see the latest state in wasmhost; nothing to do."""


class Retries:
    """How failed attempts are retried (Modal's defaults: backoff 2.0, 1 s, at most 60 s)."""

    def __init__(self, *, max_retries, backoff_coefficient=2.0, initial_delay=1.0, max_delay=60.0):
        if not 0 <= int(max_retries) <= 10:
            raise ValueError("Retries(max_retries=...) must be between 0 and 10")
        if not 1.0 <= float(backoff_coefficient) <= 10.0:
            raise ValueError("Retries(backoff_coefficient=...) must be between 1.0 and 10.0")
        self.max_retries = int(max_retries)
        self.backoff_coefficient = float(backoff_coefficient)
        self.initial_delay = float(initial_delay)
        self.max_delay = float(max_delay)


class Cron:
    """A cron schedule, in UTC unless ``timezone`` names an IANA zone."""

    def __init__(self, cron_string, timezone="UTC"):
        self.cron_string = cron_string
        self.timezone = timezone

    def manifest(self):
        if self.timezone and self.timezone != "UTC":
            return f"cron({self.cron_string}, {self.timezone})"
        return f"cron({self.cron_string})"


class Period:
    """Runs every so often (at least one second)."""

    def __init__(self, *, days=0, hours=0, minutes=0, seconds=0):
        self.seconds = days * 86400 + hours * 3600 + minutes * 60 + seconds
        if self.seconds < 1:
            raise ValueError("a Period must be at least one second")

    def manifest(self):
        return f"period({self.seconds:g}s)"
