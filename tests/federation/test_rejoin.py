"""Issue 10, item 2: a node on an empty data directory must not start as a brand-new node.

Three real nodes on 127.0.0.1 with real mTLS: KR publishes, its peers hold
and witness its history, then KR's data directory is wiped (keys and config
kept, as when a volume does not mount) and KR starts again. Its peers show
it its own history (its signed alerts beyond its sequences, a cosigned size
of its log beyond its log), and it refuses to publish, saying which peer
holds what and the ways out.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from gateway.runtime import NodeRuntime
from node.config import NodeConfig
from node.files import GENESIS_FILE
from node.ids import Country
from node.service import NodeService
from tests.federation.test_hardening_cli import ewx_async, raise_args
from tests.support.factories import make_federation, running, wait_for
from tests.support.stores import wipe_node_store

Fed = dict[Country, Path]


def _federation(tmp_path: Path) -> Fed:
    # Checkpoints often, so the peers have witnessed KR's log before it is wiped.
    return make_federation(tmp_path / "fed", outbox_retry_max_seconds=0.5, checkpoint_interval_seconds=0.2)


async def _publish_and_wipe(fed: Fed, nodes: dict[Country, NodeRuntime], count: int) -> None:
    """Publish `count` alerts from KR until both peers hold and cosigned them; stop KR, wipe its data."""
    async with running(fed["KR"]) as kr_nodes:
        kr = kr_nodes["KR"].service
        for _ in range(count):
            done = await ewx_async(*raise_args(fed["KR"]))
            assert done.returncode == 0, done.stderr
        peers: tuple[Country, ...] = ("US", "JP")
        await wait_for(
            lambda: (
                all(nodes[p].service.store.last_seq("KR", p) == count for p in peers)
                and all(size > 0 for size in kr.store.cosigned().values())
                and len(kr.store.cosigned()) == 2
            ),
            timeout=30,
        )
    wipe_node_store(fed["KR"])


def test_a_node_on_a_wiped_data_directory_refuses_to_publish_naming_the_peer(tmp_path: Path) -> None:
    fed = _federation(tmp_path)

    async def scenario() -> None:
        async with running(fed["US"], fed["JP"]) as nodes:
            await _publish_and_wipe(fed, nodes, 3)
            async with running(fed["KR"]) as kr_nodes:
                kr = kr_nodes["KR"].service

                def both_signals() -> bool:
                    missing = kr.store.history_missing()
                    return all(
                        f"own signed alerts towards {peer} from sequence 1 on" in missing.get(peer, "")
                        and "a checkpoint of KR's log at size" in missing.get(peer, "")
                        for peer in ("US", "JP")
                    )

                await wait_for(both_signals, timeout=30)
                done = await ewx_async(*raise_args(fed["KR"]))
                assert done.returncode == 1, done.stdout
                assert "Traceback" not in done.stderr
                for fragment in (
                    "US holds",
                    "JP holds",
                    "publishing is refused",
                    "backup",
                    "ewx node rejoin",
                ):
                    assert fragment in done.stderr, done.stderr
                # Nothing went out: no id was reused, the peers recorded no equivocation.
                assert kr.store.count("outbox") == 0
                for peer in ("US", "JP"):
                    assert nodes[peer].service.store.count("evidence") == 0
                shown = await ewx_async("status", "--config", str(fed["KR"]))
                assert shown.returncode == 0, shown.stderr
                assert "HISTORY MISSING: JP holds" in shown.stdout and "ewx node rejoin" in shown.stdout
                as_json = await ewx_async("status", "--config", str(fed["KR"]), "--json")
                assert set(json.loads(as_json.stdout)["history_missing"]) == {"US", "JP"}
            # Restarted on the same (still empty) store: the state was kept, not re-derived.
            async with running(fed["KR"]) as kr_nodes:
                assert set(kr_nodes["KR"].service.store.history_missing()) == {"US", "JP"}

    asyncio.run(scenario())


def test_the_peers_cosigned_size_alone_is_enough(tmp_path: Path) -> None:
    """A node whose alerts went to one peer only still learns from the other's witnessed size."""
    fed = _federation(tmp_path)

    async def scenario() -> None:
        async with running(fed["US"], fed["JP"]) as nodes:
            async with running(fed["KR"]) as kr_nodes:
                kr = kr_nodes["KR"].service
                done = await ewx_async(*raise_args(fed["KR"], "--to", "JP"))
                assert done.returncode == 0, done.stderr
                await wait_for(lambda: nodes["JP"].service.store.last_seq("KR", "JP") == 1, timeout=30)
                await wait_for(lambda: kr.store.cosigned().get("US", 0) > 0, timeout=30)
            wipe_node_store(fed["KR"])
            async with running(fed["KR"]) as kr_nodes:
                kr = kr_nodes["KR"].service
                await wait_for(lambda: "US" in kr.store.history_missing(), timeout=30)
                assert "a checkpoint of KR's log at size" in kr.store.history_missing()["US"]

    asyncio.run(scenario())


def test_a_fresh_federation_publishes_at_once(tmp_path: Path) -> None:
    """Three new nodes started together: the check finds nothing, and nothing is refused."""
    fed = _federation(tmp_path)

    async def scenario() -> None:
        async with running(fed["KR"], fed["US"], fed["JP"]) as nodes:
            kr = nodes["KR"].service
            done = await ewx_async(*raise_args(fed["KR"]))
            assert done.returncode == 0, done.stderr
            await wait_for(lambda: all(kr.store.cosigned().get(p, 0) > 0 for p in ("US", "JP")), timeout=30)
            assert kr.store.history_missing() == {}
            again = await ewx_async(*raise_args(fed["KR"]))
            assert again.returncode == 0, again.stderr

    asyncio.run(scenario())


def _own_ids(service: NodeService) -> set[str]:
    """The ids of KR's alerts a node holds."""
    return {a.alert_id for a in service.store.alerts() if a.origin == "KR"}


def test_rejoin_recovers_own_alerts_and_continues_after_them(tmp_path: Path) -> None:
    fed = _federation(tmp_path)
    trust = str(fed["KR"].parent.parent / "federation.json")

    async def scenario() -> None:
        async with running(fed["US"], fed["JP"]) as nodes:
            await _publish_and_wipe(fed, nodes, 3)
            old_ids = _own_ids(nodes["JP"].service)
            assert len(old_ids) == 3
            async with running(fed["KR"]) as kr_nodes:
                kr = kr_nodes["KR"].service
                await wait_for(lambda: set(kr.store.history_missing()) == {"US", "JP"}, timeout=30)
                unconfirmed = await ewx_async("node", "rejoin", "--config", str(fed["KR"]))
                assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
                assert kr.store.history_missing() and kr.store.log_size == 0
                done = await ewx_async("node", "rejoin", "--config", str(fed["KR"]), "--yes", "--json")
                assert done.returncode == 0, done.stderr
                summary = json.loads(done.stdout)
                assert summary["recovered"] == 3 and summary["last_seq"] == {"US": 3, "JP": 3}
                assert kr.store.history_missing() == {}
                assert _own_ids(kr) == old_ids
                # The next alert: a fresh id and the next sequence, which both peers accept.
                fresh = await ewx_async(*raise_args(fed["KR"]))
                assert fresh.returncode == 0, fresh.stderr
                new_ids = _own_ids(kr) - old_ids
                assert len(new_ids) == 1
                await wait_for(
                    lambda: all(nodes[p].service.store.last_seq("KR", p) == 4 for p in ("US", "JP")),
                    timeout=30,
                )
                for peer in ("US", "JP"):
                    assert nodes[peer].service.store.count("evidence") == 0
                    assert nodes[peer].service.store.alert("KR", next(iter(new_ids))) is not None
                # A restart finds nothing missing: the lost log's size was taken note of.
            async with running(fed["KR"]) as kr_nodes:
                kr = kr_nodes["KR"].service
                await wait_for(lambda: all(kr.links[p].reachable for p in ("US", "JP")), timeout=30)
                again = await ewx_async(*raise_args(fed["KR"]))
                assert again.returncode == 0, again.stderr
                assert kr.store.history_missing() == {}
            logs = []
            for country in ("KR", "US", "JP"):
                out = tmp_path / f"{country}.ewxlog"
                exported = await ewx_async("log", "export", "--config", str(fed[country]), "--out", str(out))
                assert exported.returncode == 0, exported.stderr
                logs.append(str(out))
        verdict = await ewx_async("audit", "verify", *logs, "--trust", trust, "--json")
        findings = json.loads(verdict.stdout)["findings"]
        # No alert was signed twice for one id or position. What the audit does
        # find is the truth about the log: KR's new log does not reproduce the
        # lost one its peers cosigned (the spec has no log epoch yet), and the
        # newest checkpoints went unwitnessed (KR stopped, or re-joined).
        assert {f["kind"] for f in findings} <= {"checkpoint_equivocation", "unpublished"}, verdict.stdout
        assert all(f["node"] == "KR" for f in findings if f["kind"] == "checkpoint_equivocation")

    asyncio.run(scenario())


def _without_genesis(fed: Fed, country: Country) -> None:
    """A data directory not made by `ewx pki init` (or one that did not mount): no GENESIS file."""
    (NodeConfig.load(fed[country]).data_dir / GENESIS_FILE).unlink()


def test_a_store_created_empty_waits_until_a_peer_has_answered(tmp_path: Path) -> None:
    fed = _federation(tmp_path)
    _without_genesis(fed, "KR")

    async def scenario() -> None:
        async with running(fed["KR"]) as kr_nodes:
            kr = kr_nodes["KR"].service
            assert kr.store.history_unchecked() is not None
            refused = await ewx_async(*raise_args(fed["KR"]))
            assert refused.returncode == 1 and "no peer has yet said what it holds of KR" in refused.stderr
            assert "ewx node first-start --yes" in refused.stderr and kr.store.log_size == 0
            shown = await ewx_async("status", "--config", str(fed["KR"]))
            assert "WAITING FOR PEERS" in shown.stdout, shown.stdout
            unconfirmed = await ewx_async("node", "first-start", "--config", str(fed["KR"]))
            assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
            async with running(fed["US"]):
                await wait_for(lambda: kr.store.history_unchecked() is None, timeout=30)
                done = await ewx_async(*raise_args(fed["KR"], "--to", "US"))
                assert done.returncode == 0, done.stderr

    asyncio.run(scenario())


def test_the_first_start_of_a_federation_can_be_declared(tmp_path: Path) -> None:
    fed = _federation(tmp_path)
    _without_genesis(fed, "KR")

    async def scenario() -> None:
        async with running(fed["KR"]) as kr_nodes:
            declared = await ewx_async("node", "first-start", "--config", str(fed["KR"]), "--yes")
            assert declared.returncode == 0, declared.stderr
            assert kr_nodes["KR"].service.store.history_unchecked() is None
            done = await ewx_async(*raise_args(fed["KR"]))
            assert done.returncode == 0, done.stderr
            again = await ewx_async("node", "first-start", "--config", str(fed["KR"]), "--yes")
            assert again.returncode == 1 and "nothing to declare" in again.stderr

    asyncio.run(scenario())


def test_a_peers_bare_word_on_the_witnessed_size_does_not_stop_publishing(tmp_path: Path) -> None:
    """Only KR's own signed checkpoint at that size proves a peer cosigned beyond KR's log."""
    from node.crypto import Checkpoint, sign_checkpoint

    fed = _federation(tmp_path)
    kr = NodeService.open(NodeConfig.load(fed["KR"]))
    us = NodeService.open(NodeConfig.load(fed["US"]))
    try:
        origin = kr.config.log_origin

        def note(size: int, signer: NodeService) -> str:
            checkpoint = Checkpoint(origin=origin, size=size, root_hash=bytes(32))
            return sign_checkpoint(checkpoint, name=origin, private_key=signer.signers["log"].private_key)

        assert kr.check_witness_size("US", 7, None) is False  # no proof: refused as a claim, not believed
        assert kr.check_witness_size("US", 7, note(7, us)) is False  # signed by another node's key
        assert kr.check_witness_size("US", 7, note(6, kr)) is False  # KR's, but of another size
        assert kr.store.history_missing() == {}
        assert kr.check_witness_size("US", 7, note(7, kr)) is False  # proven: history is missing
        assert set(kr.store.history_missing()) == {"US"}
        # The same proof, which a re-join also asks for before it believes a lost log's size.
        assert kr.proves_own_size(note(7, kr), 7) and not kr.proves_own_size(note(7, us), 7)
        assert not kr.proves_own_size(None, 7) and not kr.proves_own_size("not a note", 7)
    finally:
        kr.close()
        us.close()
