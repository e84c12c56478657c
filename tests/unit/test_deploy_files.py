"""Deploy files agree with each other: the README's nginx block is the tested one, the pinned Python is ours."""
import configparser
import re
import sys
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def test_readme_embeds_the_tested_nginx_file_verbatim():
    conf = (ROOT / "tests" / "nginx" / "gateway.conf").read_text()
    assert f"```nginx\n{conf}```\n" in (ROOT / "README.md").read_text(), \
        "README.md must hold tests/nginx/gateway.conf verbatim in an ```nginx block"


def pinned_python() -> str:
    return (ROOT / ".python-version").read_text().strip()


def test_python_is_pinned_by_major_minor_in_dot_python_version():
    # major.minor: platforms install the latest patch release, security fixes included
    assert re.fullmatch(r"3\.\d+", pinned_python())
    # Heroku reads runtime.txt first (deprecated, a warning on every build): one pin, one place
    assert not (ROOT / "runtime.txt").exists()


def test_pinned_python_satisfies_python_requires():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert Version(pinned_python()) in SpecifierSet(setup["options"]["python_requires"])


def test_pinned_python_is_the_one_running_the_tests():
    assert pinned_python() == f"{sys.version_info.major}.{sys.version_info.minor}"


def test_a_buildpack_finds_how_to_install_the_project():
    # Heroku's Python buildpack no longer falls back to `pip install -e .` for a setup.py-only app
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    assert "--editable ." in lines or "." in lines
