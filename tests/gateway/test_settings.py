from pathlib import Path

import pytest

from config.settings import Settings, SettingsError, describe, load_settings
from gateway.runtime.workers import worker_env


def test_defaults_without_environment():
    s = load_settings({})
    assert s == Settings()
    assert s.http_port == 8080 and s.smpp_port == 2775
    assert s.database_url == "" and s.redis_url == ""
    assert s.base_url == "http://127.0.0.1:8080"


def test_environment_values_are_typed():
    s = load_settings({
        "HERALD_HTTP_PORT": "9000", "HERALD_SMTP_TLS": "yes", "HERALD_VAR_DIR": "/tmp/x",
        "DATABASE_URL": "postgresql://u@h/db", "HERALD_LOG_LEVEL": "DEBUG",
    })
    assert s.http_port == 9000
    assert s.smtp_tls is True
    assert s.var_dir == Path("/tmp/x")
    assert s.database_url == "postgresql://u@h/db"
    assert s.log_level == "debug"


def test_settings_are_frozen():
    s = load_settings({})
    with pytest.raises(AttributeError):
        s.http_port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HERALD_HTTP_PORT": "abc"}, "HERALD_HTTP_PORT='abc': expected an integer from 0 to 65535"),
        ({"HERALD_SMPP_PORT": "70000"}, "HERALD_SMPP_PORT='70000': expected an integer"),
        ({"HERALD_SMTP_TLS": "maybe"}, "HERALD_SMTP_TLS='maybe': expected one of true/false"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL='mysql://x': expected a URL starting with postgres://"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL='http://x': expected a URL starting with redis://"),
        ({"HERALD_LOG_FORMAT": "xml"}, "HERALD_LOG_FORMAT='xml': expected one of json, text"),
        ({"HERALD_DB_POOL_SIZE": "1"}, "HERALD_DB_POOL_SIZE='1': expected an integer from 2 to 500"),
        ({"HERALD_ROLE": "sender"}, "HERALD_ROLE='sender': expected one of all, ingress, egress"),
        ({"HERALD_WORKERS": "2", "HERALD_WORKER_ROLES": "ingress,sender"},
         "HERALD_WORKER_ROLES='ingress,sender': expected a comma-separated list of all, ingress, egress"),
        ({"HERALD_WORKERS": "3", "HERALD_WORKER_ROLES": "ingress,egress"},
         "HERALD_WORKER_ROLES='ingress,egress': expected one role per worker (HERALD_WORKERS=3)"),
        ({"HERALD_WORKERS": "2", "HERALD_WORKER_ROLES": "egress,egress"},
         "HERALD_WORKER_ROLES='egress,egress': expected one role per worker (HERALD_WORKERS=2),"
         " with some worker taking ingress"),
    ],
)
def test_bad_values_name_variable_value_and_expectation(env, message):
    with pytest.raises(SettingsError) as err:
        load_settings(env)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_toml_file_and_environment_precedence(tmp_path):
    cfg = tmp_path / "herald.toml"
    cfg.write_text('http_port = 9100\nsmpp_port = 2800\nsmtp_tls = true\n')
    s = load_settings({"HERALD_CONFIG": str(cfg), "HERALD_SMPP_PORT": "2900"})
    assert s.http_port == 9100
    assert s.smpp_port == 2900  # environment wins
    assert s.smtp_tls is True


def test_toml_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("http_port = [")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings({"HERALD_CONFIG": str(bad)})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("colour = 'blue'\n")
    with pytest.raises(SettingsError, match="unknown keys colour"):
        load_settings({"HERALD_CONFIG": str(unknown)})
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings({"HERALD_CONFIG": str(tmp_path / "missing.toml")})
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("http_port = 'x'\n")
    with pytest.raises(SettingsError, match=r"http_port in .*wrong.toml='x'"):
        load_settings({"HERALD_CONFIG": str(wrong)})


def test_every_setting_is_documented():
    rows = describe()
    assert len(rows) == len(Settings.__dataclass_fields__)
    assert all(env and doc for env, _, doc in rows)


def test_cli_reports_bad_setting_in_one_line(monkeypatch, capsys):
    from gateway.runtime.cli import main

    monkeypatch.setenv("HERALD_HTTP_PORT", "eighty")
    with pytest.raises(SystemExit) as exit_info:
        main(["serve"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "herald: bad setting: HERALD_HTTP_PORT='eighty': expected an integer from 0 to 65535"


def test_each_worker_is_given_its_role():
    settings = load_settings({"HERALD_WORKERS": "3", "HERALD_WORKER_ROLES": "ingress,egress,all"})
    envs = [worker_env(settings, i, base={"HERALD_WORKER_ROLES": "ingress,egress,all"})
            for i in (1, 2, 3)]
    assert [e["HERALD_ROLE"] for e in envs] == ["ingress", "egress", "all"]
    # What a worker reads back is its own role, not the parent's list of them.
    assert [load_settings(e).role for e in envs] == ["ingress", "egress", "all"]
    plain = worker_env(load_settings({"HERALD_WORKERS": "2"}), 1, base={})
    assert plain["HERALD_ROLE"] == "all"


def test_list_defaults_are_shown_as_written_in_the_environment():
    shown = {env: default for env, default, _ in describe()}
    assert shown["HERALD_WORKER_ROLES"] == ""
    assert shown["HERALD_ROLE"] == "all"


def test_viber_timings_are_settings():
    s = load_settings({"HERALD_VIBER_TIMEOUT": "20", "HERALD_VIBER_MAX_ATTEMPTS": "8",
                       "HERALD_VIBER_BACKOFF_CAP": "60", "HERALD_VIBER_REFRESH": "30",
                       "HERALD_VIBER_CASCADE_POLL": "2"})
    assert (s.viber_timeout, s.viber_max_attempts, s.viber_backoff_cap, s.viber_refresh,
            s.viber_cascade_poll) == (20.0, 8, 60.0, 30.0, 2.0)
    defaults = Settings()
    assert (defaults.viber_timeout, defaults.viber_max_attempts, defaults.viber_backoff_cap,
            defaults.viber_refresh, defaults.viber_cascade_poll) == (10.0, 5, 300.0, 10.0, 5.0)
    shown = {env for env, _, _ in describe()}
    assert {"HERALD_VIBER_TIMEOUT", "HERALD_VIBER_MAX_ATTEMPTS", "HERALD_VIBER_BACKOFF_CAP",
            "HERALD_VIBER_REFRESH", "HERALD_VIBER_CASCADE_POLL"} <= shown
    with pytest.raises(SettingsError, match="HERALD_VIBER_MAX_ATTEMPTS='0': expected an integer"):
        load_settings({"HERALD_VIBER_MAX_ATTEMPTS": "0"})
    with pytest.raises(SettingsError, match=r"HERALD_VIBER_TIMEOUT='0\.5': expected an integer"):
        load_settings({"HERALD_VIBER_TIMEOUT": "0.5"})
