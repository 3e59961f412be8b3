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


def test_env_text_values_keep_their_exact_characters():
    # YAML would read these as a comment, an anchor or truncated text: secrets and URLs must arrive as typed
    from gateway.config import apply_env_overrides

    data: dict = {}
    apply_env_overrides(data, {"GATEWAY_AUDIT__S3__SECRET_ACCESS_KEY": "#abc&x y", "GATEWAY_UPSTREAM__URL":
                               "http://h:1/p #frag", "GATEWAY_SERVER__PORT": "8081", "GATEWAY_AUTH__AUDIENCE": "[a, b]"})
    assert data["audit"]["s3"]["secret_access_key"] == "#abc&x y"
    assert data["upstream"]["url"] == "http://h:1/p #frag"
    assert data["server"]["port"] == 8081 and data["auth"]["audience"] == ["a", "b"]


def test_two_processes_creating_the_signing_key_agree(tmp_path, monkeypatch):
    # the loser of the race saw no file, then found one when it tried to create it: it must load that key
    from gateway.audit import digest
    from gateway.audit.digest import key_id, load_or_generate_private_key

    path = str(tmp_path / "k.pem")
    winner = load_or_generate_private_key(path)
    monkeypatch.setattr(digest.os.path, "exists", lambda p: False)
    loser = load_or_generate_private_key(path)
    assert key_id(loser.public_key()) == key_id(winner.public_key())
