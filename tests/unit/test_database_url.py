"""DATABASE_URL: Heroku's postgres:// form becomes psycopg 3's, SQLite is the default, bad URLs name the variable."""
import os

import pytest

from app.config import ConfigError, Settings
from app.db.urls import describe


def test_default_is_sqlite_under_the_data_dir(tmp_path):
    settings = Settings.from_env({"GATEWAY_DATA_DIR": str(tmp_path / "data")})
    assert settings.database_url == f"sqlite:///{tmp_path}/data/gateway.db"


def test_data_dir_defaults_to_var_in_the_working_directory():
    assert Settings.from_env({}).database_url == "sqlite:///" + os.path.abspath("var/gateway.db")


@pytest.mark.parametrize("given", ["postgres://u:p@db.example:5432/gw", "postgresql://u:p@db.example:5432/gw",
                                   "postgresql+psycopg://u:p@db.example:5432/gw"])
def test_postgres_urls_use_psycopg_3(given):
    assert Settings.from_env({"DATABASE_URL": given}).database_url == "postgresql+psycopg://u:p@db.example:5432/gw"


@pytest.mark.parametrize("given, says", [
    ("mysql://u:p@host/db", "unsupported scheme 'mysql'"),
    ("postgres://u:p@host:notaport/db", "not a URL"),
    ("postgres:///db", "names no host"),
    ("postgres://u:p@host:5432", "names no database"),
    ("sqlite:gateway.db", "sqlite:///"),
    ("just words", "unsupported scheme"),
])
def test_a_malformed_url_is_one_message_naming_the_variable(given, says):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"DATABASE_URL": given})
    message = str(caught.value)
    assert message.startswith("DATABASE_URL ") and says in message and "\n" not in message
    assert ":p@" not in message  # the password is never repeated


def test_passwords_are_hidden_when_a_url_is_shown():
    assert describe("postgresql+psycopg://user:s3cret@host/db") == "postgresql+psycopg://user:***@host/db"
