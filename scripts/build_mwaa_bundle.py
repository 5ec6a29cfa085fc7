"""Build the Amazon MWAA bundle: ``dist/mwaa/{dags/, plugins.zip, requirements.txt}``.

MWAA installs ``requirements.txt`` with pip on every component at start-up and unpacks
``plugins.zip`` into ``/usr/local/airflow/plugins``. The bundle installs without internet access
(private network, no PyPI): ``requirements.txt`` says ``--no-index --find-links
/usr/local/airflow/plugins`` and ``plugins.zip`` holds the wheels.

What goes into ``plugins.zip``:

* this provider's wheel (built here with ``uv build``, or ``python -m build``);
* the wheels of every dependency MWAA does not already carry. MWAA images carry Apache Airflow
  and the providers AWS lists for them (amazon, celery, common-sql, fab, ftp, http, imap, postgres,
  sqlite, smtp; plus common-compat, common-io and standard that Airflow 3 itself needs), and
  everything those depend on: ``MWAA_PROVIDED`` below. The dependency walk stops there; anything
  else the provider needs, directly or not, is downloaded as a wheel for MWAA's platform
  (manylinux x86_64, CPython 3.12) at the version the constraints file pins, because MWAA
  installs with that ``--constraint`` and an unpinned version would not match.

The constraints: the repository's ``constraints/airflow-X.txt`` for that Airflow version (the
working set the tests run on; see its header), copied into ``dags/constraints.txt`` so that
``requirements.txt`` can name it as ``/usr/local/airflow/dags/constraints.txt``, as MWAA allows.
For a version without one, Airflow's own constraints file, by URL. ``--constraints FILE`` overrides.

A dependency published only as a source distribution cannot be installed on MWAA without a
compiler. The build stops and names it, unless ``--build-sdists`` builds a wheel here. Such a
wheel is only as good as the match between this machine and MWAA's workers (same Python, glibc
Linux x86_64, and the C library it links, e.g. libmysqlclient for mysqlclient); the manifest marks
it ``built_here``.

Usage: ``python scripts/build_mwaa_bundle.py [--out dist/mwaa] [--airflow-version 3.3.1]
[--python-version 3.12] [--constraints URL_OR_FILE] [--build-sdists]`` (``make mwaa-bundle``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterable
from email.parser import Parser
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parent.parent
DIST_NAME = "airflow-provider-facebook-catalog"
MWAA_PLUGINS_DIR = "/usr/local/airflow/plugins"
# MWAA's newest Airflow 3 image; its Python.
DEFAULT_AIRFLOW_VERSION = "3.3.1"
DEFAULT_PYTHON_VERSION = "3.12"
CONSTRAINTS_URL = (
    "https://raw.githubusercontent.com/apache/airflow/constraints-{airflow}/constraints-{python}.txt"
)
#: Ours, per Airflow version (constraints/compile.sh), and where the bundle puts a copy on MWAA.
REPO_CONSTRAINTS = "constraints/airflow-{airflow}.txt"
MWAA_CONSTRAINTS_PATH = "/usr/local/airflow/dags/constraints.txt"
DEFAULT_PLATFORM = "manylinux2014_x86_64"
# What an MWAA environment has installed before it reads requirements.txt: Airflow and the
# providers listed in AWS's "Apache Airflow provider packages installed on Amazon MWAA
# environments", with their dependencies.
MWAA_PROVIDED = frozenset(
    canonicalize_name(name)
    for name in (
        "apache-airflow",
        "apache-airflow-core",
        "apache-airflow-task-sdk",
        "apache-airflow-providers-amazon",
        "apache-airflow-providers-celery",
        "apache-airflow-providers-common-compat",
        "apache-airflow-providers-common-io",
        "apache-airflow-providers-common-sql",
        "apache-airflow-providers-fab",
        "apache-airflow-providers-ftp",
        "apache-airflow-providers-http",
        "apache-airflow-providers-imap",
        "apache-airflow-providers-postgres",
        "apache-airflow-providers-smtp",
        "apache-airflow-providers-sqlite",
        "apache-airflow-providers-standard",
        "watchtower",
    )
)
# Bundled all the same, at the constraints' pin: the provider needs a newer common-compat
# (pyproject: >=1.23) than older MWAA images carry (Airflow 3.0.6's: 1.7.3), and pip upgrades it
# from the bundle's wheel.
ALWAYS_BUNDLED = frozenset({canonicalize_name("apache-airflow-providers-common-compat")})


class BundleError(Exception):
    """The bundle cannot be built as asked; the message says why and what to do."""


def target_environment(python_version: str) -> dict[str, str]:
    """PEP 508 marker values of an MWAA worker: Linux x86_64, CPython ``python_version``."""
    env = dict(default_environment())
    env.update(
        python_version=python_version,
        python_full_version=f"{python_version}.0",
        sys_platform="linux",
        platform_system="Linux",
        platform_machine="x86_64",
        os_name="posix",
        implementation_name="cpython",
        platform_python_implementation="CPython",
    )
    return env


def applies(requirement: Requirement, env: dict[str, str], extras: Iterable[str] = ()) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({**env, "extra": extra}) for extra in ("", *extras))


def installed_closure(roots: Iterable[str], env: dict[str, str]) -> set[str]:
    """Every installed distribution ``roots`` depend on, by this environment's metadata."""
    seen: set[str] = set()
    todo = [(canonicalize_name(r), ()) for r in roots]
    while todo:
        name, extras = todo.pop()
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if name in seen and not extras:
            continue
        seen.add(name)
        for line in dist.requires or []:
            requirement = Requirement(line)
            if applies(requirement, env, extras):
                todo.append((canonicalize_name(requirement.name), tuple(requirement.extras)))
    return seen


def default_constraints(airflow_version: str, python_version: str) -> str:
    """The repository's constraints file for that Airflow (resolved for MWAA's Python), else Airflow's URL."""
    ours = REPO_CONSTRAINTS.format(airflow=airflow_version)
    if python_version == DEFAULT_PYTHON_VERSION and (REPO_ROOT / ours).is_file():
        return str(REPO_ROOT / ours)
    return CONSTRAINTS_URL.format(airflow=airflow_version, python=python_version)


def load_constraints(
    source: str | None, airflow_version: str, python_version: str
) -> tuple[dict[str, str], str]:
    """``name -> version`` pins of the constraints file, and where they came from."""
    location = source or default_constraints(airflow_version, python_version)
    try:
        if re.match(r"^https?://", location):
            with urllib.request.urlopen(location, timeout=30) as response:  # noqa: S310 (https URL)
                text = response.read().decode()
        else:
            text = Path(location).read_text()
    except OSError as exc:
        if source:
            raise BundleError(f"cannot read the constraints {location}: {exc}") from exc
        # No route to GitHub (an offline build machine): pin to this environment's versions.
        print(
            f"WARNING: cannot fetch {location} ({exc}); dependency wheels are pinned to this environment's "
            "versions instead. MWAA installs with that constraints file: build where it is reachable "
            "(CI does), or pass --constraints FILE.",
            file=sys.stderr,
        )
        pins = {canonicalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
        return pins, "this environment (constraints not reachable)"
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[canonicalize_name(name)] = version.strip()
    return pins, location


def build_wheel(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("airflow_provider_facebook_catalog-*.whl"):
        old.unlink()
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if Path(uv).exists():
        command = [uv, "build", "--wheel", "--out-dir", str(out_dir), str(REPO_ROOT)]
    else:
        command = [sys.executable, "-m", "build", "--wheel", "--outdir", str(out_dir), str(REPO_ROOT)]
    subprocess.run(command, check=True, cwd=REPO_ROOT)
    (wheel,) = out_dir.glob("airflow_provider_facebook_catalog-*.whl")
    return wheel


def wheel_metadata(wheel: Path) -> tuple[str, str, list[str]]:
    """Name, version and Requires-Dist of a wheel."""
    with zipfile.ZipFile(wheel) as archive:
        (path,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(archive.read(path).decode())
    return message["Name"], message["Version"], message.get_all("Requires-Dist") or []


def fetch_wheel(
    requirement: str,
    wheelhouse: Path,
    *,
    python_version: str,
    platform: str,
    build_sdists: bool,
) -> tuple[Path, bool]:
    """Download the wheel for MWAA's platform; returns (path, built_here)."""
    before = set(wheelhouse.glob("*.whl"))
    abi = "cp" + python_version.replace(".", "")
    download = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--only-binary=:all:",
        "--platform",
        platform,
        "--python-version",
        python_version,
        "--implementation",
        "cp",
        "--abi",
        abi,
        "--abi",
        "abi3",
        "--abi",
        "none",
        "--dest",
        str(wheelhouse),
        requirement,
    ]
    result = subprocess.run(download, capture_output=True, text=True, check=False)
    built_here = False
    if result.returncode != 0:
        if "No matching distribution" not in result.stderr and "from versions: none" not in result.stderr:
            raise BundleError(f"pip download {requirement} failed:\n{result.stderr[-2000:]}")
        if not build_sdists:
            raise BundleError(
                f"{requirement} has no wheel for {platform} / CPython {python_version}, so MWAA could only "
                "install it by compiling, which a worker without internet and build tools cannot do. "
                "Either MWAA must already carry it, or build a wheel here with --build-sdists (only sound "
                "on a machine of MWAA's platform)."
            )
        wheel_cmd = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--wheel-dir",
            str(wheelhouse),
            requirement,
        ]
        subprocess.run(wheel_cmd, check=True)
        built_here = True
        host = f"{sys.version_info.major}.{sys.version_info.minor}"
        if host != python_version:
            print(
                f"WARNING: {requirement} was built for this machine's Python {host}, not MWAA's "
                f"{python_version}: MWAA will not install it. Build with Python {python_version} (CI does).",
                file=sys.stderr,
            )
    (new,) = set(wheelhouse.glob("*.whl")) - before or {_existing(wheelhouse, requirement)}
    return new, built_here


def _existing(wheelhouse: Path, requirement: str) -> Path:
    name = canonicalize_name(Requirement(requirement).name)
    for wheel in wheelhouse.glob("*.whl"):
        if canonicalize_name(wheel.name.split("-", 1)[0]) == name:
            return wheel
    raise BundleError(f"no wheel for {requirement} in {wheelhouse}")


def dependency_wheels(
    requires: list[str],
    wheelhouse: Path,
    *,
    pins: dict[str, str],
    provided: set[str],
    env: dict[str, str],
    python_version: str,
    platform: str,
    build_sdists: bool,
) -> dict[str, dict[str, object]]:
    """Wheels of every dependency not in ``provided``, walked transitively from ``requires``."""
    bundled: dict[str, dict[str, object]] = {}
    todo = [Requirement(line) for line in requires]
    while todo:
        requirement = todo.pop(0)
        name = canonicalize_name(requirement.name)
        if not applies(requirement, env) or name in provided or name in bundled:
            continue
        pinned = pins.get(name)
        if pinned and not requirement.specifier.contains(pinned, prereleases=True):
            raise BundleError(
                f"{requirement} conflicts with the constraints pin {name}=={pinned}: MWAA would refuse it"
            )
        spec = f"{name}=={pinned}" if pinned else str(Requirement(f"{name}{requirement.specifier}"))
        wheel, built_here = fetch_wheel(
            spec, wheelhouse, python_version=python_version, platform=platform, build_sdists=build_sdists
        )
        _, version, its_requires = wheel_metadata(wheel)
        bundled[name] = {
            "version": version,
            "wheel": wheel.name,
            "built_here": built_here,
            "pinned_by_constraints": bool(pinned),
        }
        todo.extend(Requirement(line) for line in its_requires)
    return bundled


def build_bundle(
    out: Path,
    *,
    airflow_version: str,
    python_version: str,
    constraints: str | None,
    platform: str,
    build_sdists: bool,
) -> dict[str, object]:
    env = target_environment(python_version)
    dist_dir = out.parent
    wheel = build_wheel(dist_dir)
    name, version, requires = wheel_metadata(wheel)
    pins, pins_from = load_constraints(constraints, airflow_version, python_version)
    provided = (installed_closure(MWAA_PROVIDED, env) | set(MWAA_PROVIDED)) - ALWAYS_BUNDLED

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="mwaa-wheelhouse-") as tmp:
        wheelhouse = Path(tmp)
        bundled = dependency_wheels(
            requires,
            wheelhouse,
            pins=pins,
            provided=provided,
            env=env,
            python_version=python_version,
            platform=platform,
            build_sdists=build_sdists,
        )
        with zipfile.ZipFile(out / "plugins.zip", "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.write(wheel, wheel.name)
            for path in sorted(wheelhouse.glob("*.whl")):
                archive.write(path, path.name)

    dags_out = out / "dags"
    dags_out.mkdir()
    location = constraints or default_constraints(airflow_version, python_version)
    if re.match(r"^https?://", location):
        constraint_line = location
    else:  # a file: MWAA reads it from the DAGs folder
        shutil.copyfile(location, dags_out / Path(MWAA_CONSTRAINTS_PATH).name)
        constraint_line = MWAA_CONSTRAINTS_PATH
    (out / "requirements.txt").write_text(
        f"# Installed by MWAA on every component; offline: wheels come from plugins.zip.\n"
        f'--constraint "{constraint_line}"\n'
        f"--find-links {MWAA_PLUGINS_DIR}\n"
        f"--no-index\n"
        f"{name}=={version}\n"
    )
    for dag_file in sorted((REPO_ROOT / "dags").glob("*.py")):
        shutil.copy2(dag_file, dags_out / dag_file.name)

    manifest: dict[str, object] = {
        "package": {"name": name, "version": version, "wheel": wheel.name},
        "mwaa": {"airflow_version": airflow_version, "python_version": python_version, "platform": platform},
        "constraints": pins_from,
        "assumed_on_mwaa": sorted(MWAA_PROVIDED),
        "bundled_dependencies": bundled,
        "dags": sorted(p.name for p in dags_out.glob("*.py")),
    }
    (out / "bundle-manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "dist" / "mwaa", help="bundle directory")
    parser.add_argument("--airflow-version", default=DEFAULT_AIRFLOW_VERSION, help="MWAA's Airflow version")
    parser.add_argument("--python-version", default=DEFAULT_PYTHON_VERSION, help="MWAA's Python version")
    parser.add_argument(
        "--constraints",
        default=None,
        help="constraints URL or file (default: constraints/airflow-VERSION.txt, else Airflow's URL)",
    )
    parser.add_argument("--platform", default=DEFAULT_PLATFORM, help="wheel platform tag of MWAA's workers")
    parser.add_argument(
        "--build-sdists",
        action="store_true",
        help="build wheels here for dependencies published only as source distributions",
    )
    args = parser.parse_args(argv)
    try:
        manifest = build_bundle(
            args.out.resolve(),
            airflow_version=args.airflow_version,
            python_version=args.python_version,
            constraints=args.constraints,
            platform=args.platform,
            build_sdists=args.build_sdists,
        )
    except BundleError as exc:
        print(f"build_mwaa_bundle: {exc}", file=sys.stderr)
        return 1
    bundled = manifest["bundled_dependencies"]
    assert isinstance(bundled, dict)
    print(f"MWAA bundle in {args.out}: dags/, requirements.txt, plugins.zip with {manifest['package']}")
    for dep, info in sorted(bundled.items()):
        print(f"  + {dep} {info['version']}{' (built here)' if info['built_here'] else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
