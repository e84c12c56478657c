"""The project's promises to a new user: README's commands are the ones CI and the Procfile run."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# the whole suite, then every test that starts gunicorn again under the other worker class
TEST_COMMAND = ("python3 -m venv --clear .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest"
                " && GATEWAY_WORKER_CLASS=gthread .venv/bin/python -m pytest --ignore=tests/unit")


def test_ci_runs_exactly_the_readme_test_command():
    assert TEST_COMMAND in (ROOT / "README.md").read_text()
    assert TEST_COMMAND in (ROOT / ".ci" / "run").read_text().splitlines()


def test_readme_shows_the_procfile_command():
    procfile = (ROOT / "Procfile").read_text().strip()
    assert procfile == ("web: gunicorn -c python:app.gunicorn_conf wsgi:app\nworker: image-gateway worker\n"
                        "release: image-gateway db upgrade")
    assert procfile in (ROOT / "README.md").read_text()


def test_every_python_folder_of_the_package_is_a_package():
    """`packages = find:` only ships folders with an __init__.py: a plain `pip install .` must get them all."""
    folders = {path.parent for path in (ROOT / "app").rglob("*.py") if "__pycache__" not in path.parts}
    missing = sorted(str(folder.relative_to(ROOT)) for folder in folders if not (folder / "__init__.py").exists())
    assert missing == []
