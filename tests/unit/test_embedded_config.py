"""The embedded server's milvus.yaml: the template filled with ports, --milvus-config overrides applied."""

import pytest

from harness.errors import UsageError
from harness.targets.embedded_server import render_config
from harness.targets.milvus_config import parse_config_overrides


TEMPLATE = """
etcd:
  endpoints: localhost:{{ etcd_port(int): 2379 }}
  data:
    dir: {{ etcd_data_dir }}
dataNode:
  memory:
    forceSyncEnable: true
proxy:
  port: {{ proxy_port(int): 19530 }}
"""


def test_render_config_fills_ports_and_applies_overrides():
    import yaml

    text = render_config(TEMPLATE, {"etcd_port": 1234, "etcd_data_dir": "/x"},
                         parse_config_overrides({"dataNode.memory.forceSyncWatermark": "0.1"}),
                         internal={"etcd.config.path": "/e.yaml"})
    config = yaml.safe_load(text)
    assert config["etcd"]["endpoints"] == "localhost:1234"
    assert config["proxy"]["port"] == 19530  # default kept
    assert config["dataNode"]["memory"]["forceSyncWatermark"] == 0.1
    assert config["etcd"]["config"]["path"] == "/e.yaml"


def test_render_config_refuses_an_unknown_section():
    with pytest.raises(UsageError, match="dataNod"):
        render_config(TEMPLATE, {}, parse_config_overrides({"dataNod.memory.x": "1"}))
    with pytest.raises(UsageError, match="dotted"):
        parse_config_overrides({"a..b": "1"})
