import pytest

from gateway.config import ConfigError, load_settings


def _write(tmp_path, text):
    p = tmp_path / "gateway.yaml"
    p.write_text(text)
    return p


GOOD = """
server: {port: 9001}
upstream: {url: "http://127.0.0.1:9000/"}
auth: {issuer: "http://127.0.0.1:5556", audience: reasoning-gateway, groups_claim: realm_access.roles}
"""


def test_valid_file_and_env_overrides(tmp_path):
    s = load_settings(_write(tmp_path, GOOD), env={"GATEWAY_SERVER__PORT": "9100",
                                                   "GATEWAY_AUTH__ALGORITHMS": "[ES256]"})
    assert s.server.port == 9100 and s.auth.algorithms == ["ES256"]
    assert s.auth.audience == ["reasoning-gateway"] and s.upstream.url == "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    "text,expected",
    [
        (GOOD.replace("9001", "99999"), "server.port"),
        (GOOD + "\nbogus: 1\n", "bogus"),
        (GOOD.replace("reasoning-gateway", "[]"), "auth"),
        (GOOD.replace("groups_claim", "algorithms: [HS256], groups_claim"), "auth.algorithms"),
        (GOOD.replace("algorithms", "x").replace("groups_claim", "algorithms: [none], groups_claim"), "auth.algorithms"),
        (GOOD.replace('"http://127.0.0.1:9000/"', "ftp://x"), "upstream.url"),
        ("server: [1\n", "gateway.yaml:"),
        ("- just a list\n", "top level"),
    ],
)
def test_invalid_config_names_the_key_path(tmp_path, text, expected):
    with pytest.raises(ConfigError) as err:
        load_settings(_write(tmp_path, text), env={})
    assert expected in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.yaml", env={})


def test_cli_refuses_to_start_with_invalid_config(tmp_path, capsys):
    from gateway.cli import main

    code = main(["serve", "--config", str(_write(tmp_path, GOOD.replace("9001", "-1")))])
    assert code == 2
    assert "server.port" in capsys.readouterr().err
