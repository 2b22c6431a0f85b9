"""The jail's routes, each tried as a hostile plugin would and each asserted closed (the jail issue).

The harness runs as root here, as it does in CI and in containers; a control without the jail
(``isolation="no-jail"``) shows for the routes that touch nothing shared that the attack is real.
Hostile code reports through the run's logs (tests/hostile_methods.py); what it is told comes in
a read-only ``hostile_inputs.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from advbench.runner import run
from test_isolation import KEY, hostile, hostile_entries, hostile_inputs  # noqa: F401 - fixtures

ROOT = Path(__file__).parents[1]


@pytest.fixture
def host_targets(tmp_path):
    """Files of the host that no method may touch: a file to chmod, secrets in results/, the cache
    and the home directory, and a name for a file in /dev."""
    chmod_target = tmp_path / "installed.py"
    chmod_target.write_text("code\n")
    chmod_target.chmod(0o644)
    results = tmp_path / "results"
    (results / "runs").mkdir(parents=True)
    (results / "runs" / "secret.json").write_text('{"score": 1}')
    cache = Path.home() / ".cache" / "advbench" / f"canary-{uuid.uuid4().hex}"
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text("the nas table")
    home = Path.home() / f".advbench-canary-{uuid.uuid4().hex}"
    home.write_text("a secret in the home folder")
    dev_name = f"advbench-probe-{uuid.uuid4().hex[:8]}"
    yield {"chmod_target": str(chmod_target), "dev_name": dev_name, "results": results,
           "secrets": [str(results / "runs" / "secret.json"), str(ROOT / "results" / "README.md"), str(cache),
                       str(home)]}
    for leftover in (cache, home, Path("/dev") / dev_name, Path("/dev") / f"{dev_name}-blk"):
        leftover.unlink(missing_ok=True)


@pytest.mark.parametrize("method, route", [("toy_escape_to_the_host", "method:jail"),
                                           ("toy_solution_escapes_to_the_host", "solution:jail")])
def test_method_code_is_not_the_hosts_root_and_reaches_none_of_its_files(hostile, host_targets, method, route):
    """Route 1 (the host's root: /proc/sys, block devices, /dev, chmod and utime outside) and route 4
    (results/, the cache, the home folder), from the method process and from the scoring process."""
    hostile.inputs.update({k: v for k, v in host_targets.items() if k != "results"})
    mode = os.stat(host_targets["chmod_target"]).st_mode
    pattern = Path("/proc/sys/kernel/core_pattern").read_text()
    rec, entries = hostile(method, results_dir=host_targets["results"])
    (entry,) = [e for e in entries if e["route"] == route]
    notes = dict(n.split(": ", 1) if ": " in n else n.split(" ", 1) for n in entry["kinds"])
    assert notes["uid"] == "65534" and notes["euid"] == "65534", entry
    for what in ("write /proc/sys", "open a block device", "mknod a block device", "create in /dev", "chmod outside",
                 "utime outside", *(f"read secret {i}" for i in range(4))):
        assert notes[what] != "done", (what, entry)
    assert not (Path("/dev") / host_targets["dev_name"]).exists()
    assert os.stat(host_targets["chmod_target"]).st_mode == mode
    assert Path("/proc/sys/kernel/core_pattern").read_text() == pattern
    assert rec["jail"]["uid"] == 65534 and rec["status"] == "ok"

    if os.getuid() == 0:  # the control: without the jail, method code is the host's root
        rec, entries = hostile(method, results_dir=host_targets["results"], isolation="no-jail")
        (entry,) = [e for e in entries if e["route"] == route]
        notes = dict(n.split(": ", 1) if ": " in n else n.split(" ", 1) for n in entry["kinds"])
        assert notes["uid"] == "0" and notes["write /proc/sys"] == "done" and notes["create in /dev"] == "done"
        assert notes["read secret 0"] == notes["read secret 2"] == notes["read secret 3"] == "done", entry
        os.chmod(host_targets["chmod_target"], mode)


def test_the_seal_key_is_nowhere_a_method_can_look(hostile, monkeypatch):
    """Route 3: the key is read once and removed from the harness's environment; the method looks
    in its environment, every process's environment and command line, and every file it can list."""
    key = f"a-key-made-for-this-test-only-{uuid.uuid4().hex}"  # in no source file the method can read
    monkeypatch.setenv("ADVBENCH_SEAL_KEY", key)
    rec, (entry,) = hostile("toy_look_for_the_key", sealed=True)
    assert any(k.startswith("looked at") for k in entry["kinds"]) and len(entry["kinds"]) > 10  # it did look
    assert rec["sealed"] and key not in json.dumps(entry)
    assert key not in json.dumps({k: v for k, v in rec.items() if not k.startswith("_")})
    assert "ADVBENCH_SEAL_KEY" not in os.environ  # read once, then gone from the harness's environment too


def test_the_seal_key_can_come_from_a_file_out_of_every_view(hostile, tmp_path, monkeypatch):
    from advbench import runner

    key_file = tmp_path / "seal.key"
    key_file.write_text("another-key-from-a-file-0123456789\n")
    monkeypatch.delenv("ADVBENCH_SEAL_KEY", raising=False)
    monkeypatch.setattr(runner, "_SEAL", {})
    runner.seal_key(key_file)
    hostile.inputs.update(chmod_target=str(tmp_path / "x"), dev_name="advbench-unused",
                          secrets=[str(key_file)])
    rec, entries = hostile("toy_escape_to_the_host", sealed=True)
    notes = entries[0]["kinds"]
    assert "read secret 0: FileNotFoundError" in notes, notes
    import hashlib

    assert rec["seal_key_sha256"] == hashlib.sha256(b"another-key-from-a-file-0123456789").hexdigest()


def test_plugin_code_never_runs_in_the_harness(toy_registry, tmp_path, monkeypatch):
    """Route 2: a plugin package whose ``__init__`` notes where it was imported. Checking that the
    method exists imports nothing; the package is imported in the jail only, which has no key."""
    pkg = tmp_path / "plugins" / "evil_plugin"
    pkg.mkdir(parents=True)
    marker = tmp_path / "imported-in-the-harness"
    (pkg / "__init__.py").write_text(
        "import os, sys\n"
        "try:\n"
        f"    open({str(marker)!r}, 'a').write(str(os.getpid()))\n"
        "except OSError:\n"
        "    pass\n"
        "sys.stderr.write('EVIL-INIT key-in-env=%s\\n' % ('ADVBENCH_SEAL_KEY' in os.environ))\n")
    (pkg / "method.py").write_text("def train(train, ctx):\n    return 0.0\n")
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    monkeypatch.setenv("ADVBENCH_SEAL_KEY", KEY)
    toy_registry.register_method("toy", "evil", "evil_plugin.method:train", source="evil-plugin")
    rec = run("toy", "evil", results_dir=None, registry=toy_registry, sealed=True, keep_artifacts=True)
    assert rec["status"] == "ok", rec["error"]
    assert "evil_plugin" not in sys.modules and not marker.exists()
    assert "EVIL-INIT key-in-env=False" in rec["_artifacts"]["method.log"].decode()


def test_scorer_and_method_share_no_writable_folder(hostile):
    """Route 5: solution code, which sees held-out inputs, leaves a note in /dev/shm and /tmp of its
    scoring process; the method looks for it after the checkpoint."""
    rec, (entry,) = hostile("toy_shared_memory_handoff")
    assert rec["status"] == "ok" and entry["kinds"] == ["/dev/shm: nothing", "/tmp: nothing"]
    assert not Path("/dev/shm/advbench-handoff.txt").exists() and not Path("/tmp/advbench-handoff.txt").exists()


def test_memory_in_temporary_files_counts_against_the_cap(hostile):
    """Route 6: 600 MiB written to /dev/shm under a cap of 256 MiB: the run is stopped, and the file
    is gone with it."""
    hostile.inputs["tmpfs_mib"] = 600
    rec, _ = hostile("toy_memory_in_tmpfs", memory_cap=256 * 2**20)
    assert rec["status"] in ("out_of_memory", "error"), rec["error"]
    assert rec["status"] == "out_of_memory" or "No space left" in (rec["error"] or ""), rec["error"]
    assert not Path("/dev/shm/advbench-hoard").exists()


def test_the_scoring_process_is_under_the_runs_memory_cap(hostile):
    """Route 6: solution code allocating 2 GiB in the scoring process under a cap of 300 MiB."""
    hostile.inputs["scorer_mib"] = 2048
    rec, _ = hostile("toy_solution_hoards_memory", memory_cap=300 * 2**20)
    assert rec["status"] in ("out_of_memory", "error") and rec["metrics"] == {}, rec
    if rec["jail"]["limits"]["by"].startswith("cgroup"):
        assert rec["memory"]["run_peak_bytes"] <= 320 * 2**20


def test_a_run_cannot_have_more_processes_than_its_limit(hostile):
    """Route 6: a method starts 200 processes under a limit of 64 (threads count too)."""
    hostile.inputs["processes"] = 200
    rec, entries = hostile("toy_many_processes", max_processes=64)
    (entry,) = entries
    (count,) = [int(k.split()[1]) for k in entry["kinds"] if k.startswith("started ")]
    assert count < 64 and "all started" not in entry["kinds"], entry  # a fork was refused (EAGAIN)
    assert rec["jail"]["limits"]["processes"] == 64


def test_method_output_goes_to_a_capped_log_never_to_the_harness(tmp_path):
    """Route 7: 30 MB on stdout and stderr, then truncating them. The harness's own stderr (a file
    here, as under `| tee` or CI) holds its own lines only; the run's log keeps 10 MiB and a note."""
    harness_err = tmp_path / "harness.err"
    code = ("import sys; sys.path.insert(0, 'tests'); import toy; from advbench.registry import Registry; "
            "from advbench.runner import run; reg = Registry(); reg.register_task(toy.SPEC); "
            "reg.register_method('toy', 'flood', 'hostile_methods:toy_flood_the_output'); "
            f"rec = run('toy', 'flood', registry=reg, results_dir={str(tmp_path / 'results')!r}); "
            "print(rec['status'], rec['path']); print(rec['error'], file=sys.stderr)")
    with open(harness_err, "wb") as err:
        err.write(b"harness log line\n")
        err.flush()
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=err,
                              text=True, timeout=300)
    status, path = done.stdout.split()
    assert status == "ok", done.stdout
    assert harness_err.read_bytes().startswith(b"harness log line\n") and harness_err.stat().st_size < 100_000
    log = Path(path).with_suffix("").with_name(Path(path).stem + ".method.log")
    text = log.read_bytes()
    assert 10 * 2**20 <= len(text) < 10 * 2**20 + 1000 and b"output truncated" in text[-200:]
    rec = json.loads(Path(path).read_text())
    assert rec["artifacts"] == [log.name]


def test_sealed_records_publish_no_evaluation_seeds(tmp_path, monkeypatch):
    """Route 8: ppo's evaluation episode seeds are held-out information. Unsealed they are in the
    record; sealed they are in a private artifact, and the record says only how many there were."""
    monkeypatch.setenv("ADVBENCH_SEAL_KEY", KEY)
    rec = run("ppo", "floor", seed=0, results_dir=tmp_path, sealed=True)
    assert rec["status"] == "ok", rec["error"]
    assert "evaluation_seeds" not in rec["config"]["data"] and rec["config"]["data"]["evaluation_episodes"] == 50
    assert rec["private_artifacts"] == [Path(rec["path"]).stem + ".heldout-description.json"]
    private = tmp_path / "private" / Path(rec["path"]).relative_to(tmp_path).parent / rec["private_artifacts"][0]
    assert len(json.loads(private.read_text())["evaluation_seeds"]) == 50
    open_rec = run("ppo", "floor", seed=0, results_dir=tmp_path)
    assert len(open_rec["config"]["data"]["evaluation_seeds"]) == 50 and open_rec["private_artifacts"] == []


def test_a_sealed_run_refuses_foreign_start_up_code(tmp_path, monkeypatch):
    """A .pth file with executable lines runs in every interpreter at start-up, the harness's
    included, where the key is: a sealed run refuses to start beside one that is not advbench's."""
    from advbench.errors import UsageError
    from advbench.runner import check_startup_code

    check_startup_code()  # this environment: advbench's editable install and setuptools' shim only
    (tmp_path / "zz-evil.pth").write_text("import os; os.environ.get('ADVBENCH_SEAL_KEY')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UsageError, match="zz-evil.pth has executable lines"):
        check_startup_code()
    (tmp_path / "zz-evil.pth").write_text("/some/plain/path\n")  # a plain path entry is no code
    check_startup_code()


def test_the_jail_drops_root_before_any_plugin_code(tmp_path):
    """The jail's interpreter starts with -I -S: no PYTHON* variable, no user site, no .pth runs
    before the bootstrap has become uid 65534; then it starts again as 65534, with its site."""
    from advbench.jail import BOOT

    assert BOOT.index("os.setresuid(65534") < BOOT.index("os.execv(")  # the site loads on the second start


UNPRIVILEGED_HARNESS = """
import json, os, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import toy
from advbench.registry import Registry
from advbench.runner import run
reg = Registry()
reg.register_task(toy.SPEC)
reg.register_method("toy", "escape", "hostile_methods:toy_escape_to_the_host")
rec = run("toy", "escape", registry=reg, results_dir=None, keep_artifacts=True, seed=3)
lines = [l for l in (rec.get("_artifacts") or {}).get("method.log", b"").decode().splitlines()
         if l.startswith("ADVBENCH-HOSTILE ")]
print(json.dumps({"uid": os.getuid(), "status": rec["status"], "error": rec["error"], "jail": rec["jail"],
                  "notes": json.loads(lines[0].split(" ", 1)[1])["kinds"] if lines else None}))
"""


def test_the_jail_holds_with_the_harness_as_an_unprivileged_user(tmp_path):
    """The same routes with the harness as an ordinary user (uid 1000, no capability): bwrap maps the
    jail's 65534 to that user, and no cgroup can be made, so rlimits hold the run. As root, the test
    starts that harness in a mount namespace where the interpreter under /root is readable by all."""
    import shutil
    import tempfile

    from advbench.jail import bwrap_binary

    work = Path(tempfile.mkdtemp(prefix="advbench-unprivileged-", dir="/tmp"))
    try:
        work.chmod(0o777)
        inputs = work / "inputs"
        inputs.mkdir()
        home = work / "home"
        home.mkdir()
        secret = home / "secret.txt"
        secret.write_text("the harness user's own file")
        (inputs / "hostile_inputs.json").write_text(json.dumps({
            "chmod_target": str(inputs / "hostile_inputs.json"), "dev_name": f"advbench-{uuid.uuid4().hex[:8]}",
            "secrets": [str(secret), str(work / "results")]}))
        for p in (inputs, home, secret, inputs / "hostile_inputs.json"):
            os.chown(p, 1000, 1000) if os.getuid() == 0 else None
        cmd = [sys.executable, "-c", UNPRIVILEGED_HARNESS, str(inputs), str(ROOT / "tests"), str(work / "results")]
        env = dict(os.environ, HOME=str(home), ADVBENCH_THREADS="1")
        env.pop("ADVBENCH_SEAL_KEY", None)
        if os.getuid() == 0:
            outer = [bwrap_binary(), "--bind", "/", "/", "--dev-bind", "/dev", "/dev"]
            home_root = os.path.realpath(os.path.expanduser("~"))
            if sys.base_prefix.startswith(home_root + "/"):  # an interpreter under a 0700 home (pyenv)
                outer += ["--perms", "0755", "--tmpfs", home_root]
                for parent in reversed(Path(sys.base_prefix).parents):
                    if str(parent).startswith(home_root + "/"):
                        outer += ["--perms", "0755", "--dir", str(parent)]
                outer += ["--ro-bind", sys.base_prefix, sys.base_prefix]
            cmd = [*outer, "--", shutil.which("setpriv"), "--reuid=1000", "--regid=1000", "--clear-groups",
                   "--inh-caps=-all", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=str(work))
        assert done.returncode == 0, done.stderr[-3000:]
        got = json.loads(done.stdout.strip().splitlines()[-1])
        assert got["uid"] != 0 and got["status"] == "ok", got["error"]
        assert got["jail"]["uid"] == 65534 and got["jail"]["limits"]["by"] in ("rlimit", "cgroup v2"), got["jail"]
        notes = dict(n.split(": ", 1) if ": " in n else n.split(" ", 1) for n in got["notes"])
        assert notes["uid"] == "65534", notes
        for what in ("write /proc/sys", "mknod a block device", "create in /dev", "chmod outside", "read secret 0",
                     "read secret 1"):
            assert notes[what] != "done", (what, notes)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_a_sealed_run_scores_each_checkpoint_in_a_fresh_jail(hostile):
    """What solution code does to its scoring process (patch the contract) does not outlive the
    evaluation in a sealed run, the kind that is ranked; an unsealed run keeps one scorer per run."""
    rec, entries = hostile("toy_patch_the_scorer", sealed=True)
    notes = [e["kinds"][0] for e in entries if e["route"] == "solution:patch"]
    assert len(notes) >= 2 and set(notes) == {"clean"}, notes
    assert rec["jail"]["scoring"] == "a fresh jail per evaluation"
    rec, entries = hostile("toy_patch_the_scorer")
    notes = [e["kinds"][0] for e in entries if e["route"] == "solution:patch"]
    assert notes[:2] == ["clean", "patched before"] and rec["jail"]["scoring"] == "one jail per run", notes


def test_a_harness_started_in_the_temporary_folder_shows_a_method_none_of_the_hosts(tmp_path):
    """``python -c`` started in /tmp puts /tmp on the harness's sys.path, and the jail binds what that
    path holds: the host's /tmp (other runs' records, a key saved there) would lie over the jail's
    own, read-only, and leave a method no writable temporary folder. It is never bound."""
    import shutil
    import tempfile

    from advbench.jail import readable_paths

    host_tmp = os.path.realpath(tempfile.gettempdir())
    inputs = Path(tempfile.mkdtemp(prefix="advbench-in-tmp-", dir=host_tmp))
    inputs.chmod(0o755)  # the method reads its inputs as uid 65534
    canary = Path(host_tmp) / f"advbench-canary-{uuid.uuid4().hex}.json"
    try:
        canary.write_text('{"score": 1}')
        (inputs / "hostile_inputs.json").write_text(json.dumps({
            "chmod_target": str(inputs / "hostile_inputs.json"), "dev_name": f"advbench-{uuid.uuid4().hex[:8]}",
            "secrets": [str(canary), str(inputs / "hostile_inputs.json")]}))
        old = sys.path[:]
        sys.path.insert(0, host_tmp)
        try:
            assert host_tmp not in readable_paths()
        finally:
            sys.path[:] = old
        env = dict(os.environ, ADVBENCH_THREADS="1")
        env.pop("ADVBENCH_SEAL_KEY", None)
        done = subprocess.run([sys.executable, "-c", UNPRIVILEGED_HARNESS, str(inputs), str(ROOT / "tests"),
                               str(tmp_path / "results")], capture_output=True, text=True, timeout=300, env=env,
                              cwd=host_tmp)
        assert done.returncode == 0, done.stderr[-3000:]
        got = json.loads(done.stdout.strip().splitlines()[-1])
        assert got["status"] == "ok", got["error"]
        notes = dict(n.split(": ", 1) if ": " in n else n.split(" ", 1) for n in got["notes"])
        assert notes["read secret 0"] != "done", notes  # the canary in the host's /tmp
    finally:
        canary.unlink(missing_ok=True)
        shutil.rmtree(inputs, ignore_errors=True)


def test_a_gpu_jail_keeps_the_hosts_cuda_settings_and_sets_no_address_space_limit(monkeypatch):
    """On the ``cuda`` profile the jail keeps where the host's libcuda is (CUDA images put it on
    LD_LIBRARY_PATH) and which GPUs are visible; where no cgroup holds the run, it sets no limit on
    address space, which CUDA reserves far beyond what it uses (it would not start under one)."""
    import resource

    from advbench.jail import JailSpec, RunLimits, _clean_env, wants_gpu

    monkeypatch.setenv("LD_LIBRARY_PATH", "/usr/local/nvidia/lib64")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert {k: _clean_env({}, gpu=True)[k] for k in ("LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES")} == {
        "LD_LIBRARY_PATH": "/usr/local/nvidia/lib64", "CUDA_VISIBLE_DEVICES": "0"}
    assert not {"LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES"} & set(_clean_env({}, gpu=False))

    monkeypatch.setenv("ADVBENCH_JAIL", "0")  # so that no cgroup is made: rlimits hold the run
    limits = RunLimits(2**30, 4096, 1)
    assert not limits.enforced

    def address_space_limit(**kw) -> int:
        code = "import resource; print(resource.getrlimit(resource.RLIMIT_AS)[0])"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                             preexec_fn=limits.rlimit_preexec(**kw))
        return int(out.stdout)

    assert address_space_limit() == 2 * 2**30
    assert address_space_limit(address_space=False) == resource.getrlimit(resource.RLIMIT_AS)[0]
    # with --no-jail (debugging) the profile says whether the child gets the GPU's settings
    assert wants_gpu({"profile": "cuda"}, None) and not wants_gpu({"profile": "cpu"}, None)
    assert not wants_gpu({"profile": "cuda"}, JailSpec(limits, gpu=False))
