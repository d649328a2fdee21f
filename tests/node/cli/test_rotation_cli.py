"""`ewx pki rotate` / `endorse` / `announce` with the real CLI against real `ewx serve` processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.node.cli.test_cli import cluster, ewx, listed, wait_until

pytestmark = pytest.mark.slow
__all__ = ["cluster"]  # the fixture, imported for this module's tests


def test_rotate_endorse_announce_then_peers_use_the_new_key(cluster: dict[str, Path], tmp_path: Path) -> None:
    kr, us = cluster["KR"], cluster["US"]
    fed = kr.parent.parent
    before = json.loads(ewx("pki", "show", "--config", str(us), "--json").stdout)["members"]["KR"]
    old_alert = [k["key_id"] for k in before["keys"] if k["purpose"] == "alert"]

    request, update = tmp_path / "kr.request", tmp_path / "kr.update"
    rotated = ewx("pki", "rotate", "--config", str(kr), "--purpose", "alert", "--out", str(request))
    assert '"member": "KR"' in rotated.stdout and '"ca_signature": false' in rotated.stdout
    assert (kr.parent / "keys" / "alert.key.next").exists()

    # The US CA may not vouch for KR, and nothing is written when it refuses.
    refused = ewx(
        "pki", "endorse", str(request), "--ca-dir", str(fed / "US" / "ca"), "--out", str(update), check=False
    )
    assert refused.returncode == 2 and "only for its own country" in refused.stderr and not update.exists()
    # Announcing an update without the CA's signature is refused by the node itself.
    unendorsed = ewx("pki", "announce", "--config", str(kr), str(request), check=False)
    assert unendorsed.returncode == 1 and "national CA" in unendorsed.stderr

    endorsed = ewx("pki", "endorse", str(request), "--ca-dir", str(fed / "KR" / "ca"), "--out", str(update))
    assert '"ca_signature": true' in endorsed.stdout
    announced = json.loads(ewx("pki", "announce", "--config", str(kr), str(update)).stdout)
    new_alert = announced["signing_keys"]["alert"]
    assert announced["serial"] == 1 and new_alert not in old_alert
    again = ewx("pki", "announce", "--config", str(kr), str(update), check=False)
    assert again.returncode == 1 and "next one this node needs is 2" in again.stderr

    def us_knows_the_new_key() -> bool:
        members = json.loads(ewx("pki", "show", "--config", str(us), "--json").stdout)["members"]
        return members["KR"]["trust_updates"] == 1 and new_alert in [
            k["key_id"] for k in members["KR"]["keys"]
        ]

    wait_until(us_knows_the_new_key)
    shown = ewx("pki", "show", "--config", str(us)).stdout
    assert "1 trust update(s) applied" in shown and new_alert in shown

    alert_id = ewx(
        "alert",
        "raise",
        "--config",
        str(kr),
        "--hs",
        "8112.92",
        "--category",
        "EXPORT_CONTROL",
        "--severity",
        "SEVERE",
        "--source-country",
        "CN",
        "--headline",
        "Gallium export licensing, signed with the rotated key",
    ).stdout.strip()
    wait_until(lambda: [a for a in listed(us) if a["alert_id"] == alert_id])
    status = ewx("status", "--config", str(kr)).stdout
    assert f"alert key {new_alert} valid until" in status and "TLS certificate valid until" in status
    assert "EXPIRING SOON" not in status and "NOT USABLE" not in status
