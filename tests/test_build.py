"""The loader: fallback with one warning, PYGAN_REQUIRE_EXT, `python -m pygan info`, concurrent builds."""

import os
import subprocess
import sys
import textwrap

import pytest

# Runs pygan's ops in a fresh interpreter and prints what happened; used with different environments.
SCRIPT = textwrap.dedent("""
    import warnings, torch, pygan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = [torch.randn(100) * 3, torch.randn(4, 5).double()]
        want = [x.clamp(-0.5, 0.5) for x in t]
        for _ in range(3):
            pygan.ops.clip_(t, -0.5, 0.5)
        assert all(torch.equal(a, b) for a, b in zip(t, want))
        p = torch.nn.Parameter(torch.randn(10)); p.grad = torch.randn(10)
        pygan.optim.ClippedRMSprop([p], lr=0.1, clip=0.2).step()
        assert p.abs().max() <= 0.2
    ours = [w for w in caught if issubclass(w.category, pygan.PyganExtensionWarning)]
    print("warnings", len(ours), "loaded", pygan._build.info().loaded)
    for w in ours:
        print("message", w.message)
""")


def run_python(code, env_updates, timeout=600):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYGAN_")}
    env.update(env_updates)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_fallback_warns_once_and_stays_correct():
    out = run_python(SCRIPT, {"PYGAN_DISABLE_EXT": "1"})
    assert out.returncode == 0, out.stderr
    assert "warnings 1 loaded False" in out.stdout
    assert "PYGAN_REQUIRE_EXT=1" in out.stdout and "reference" in out.stdout


def test_missing_compiler_falls_back_or_errors(tmp_path):
    env = {"CXX": "/nonexistent/c++", "PYGAN_BUILD_DIR": str(tmp_path / "build")}
    out = run_python(SCRIPT, env)
    assert out.returncode == 0, out.stderr
    assert "warnings 1 loaded False" in out.stdout and "no C++ compiler" in out.stdout
    out = run_python(SCRIPT, {**env, "PYGAN_REQUIRE_EXT": "1"})
    assert out.returncode != 0
    assert "PYGAN_REQUIRE_EXT=1" in out.stderr and "no C++ compiler" in out.stderr


def test_info_command():
    out = subprocess.run([sys.executable, "-m", "pygan", "info"], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    for key in ("torch", "extension loaded  yes", "CPU kernels       yes", "CUDA kernels", "build directory",
                "compiler"):
        assert key in out.stdout


def test_two_processes_build_at_once_despite_a_stale_lock(tmp_path):
    build = tmp_path / "build"
    build.mkdir()
    (build / "lock").write_text("")  # what a build killed mid-way leaves behind
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYGAN_")}
    env.update(PYGAN_BUILD_DIR=str(build), PYGAN_REQUIRE_EXT="1")
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        outs = [p.communicate(timeout=900) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (stdout, stderr) in zip(procs, outs):
        assert p.returncode == 0, stderr
        assert "warnings 0 loaded True" in stdout
    assert (build / "pygan_ext.so").is_file()


@pytest.mark.parametrize("value", ["bogus"])
def test_bad_cpu_capability_is_reported(value):
    out = run_python(SCRIPT, {"PYGAN_CPU_CAPABILITY": value, "PYGAN_REQUIRE_EXT": "1"})
    assert out.returncode != 0 and "PYGAN_CPU_CAPABILITY must be one of" in out.stderr


def test_prebuilt_library_loads_without_a_compiler(tmp_path):
    # What `PYGAN_BUILD_EXT=1 pip install --no-build-isolation .` does: compile into pygan/_prebuilt.
    import shutil

    import pygan

    package = tmp_path / "pygan"
    shutil.copytree(os.path.dirname(pygan.__file__), package,
                    ignore=shutil.ignore_patterns("__pycache__", "_prebuilt", "csrc", "bench"))
    build = run_python(f"from pathlib import Path; from pygan import _build; "
                       f"_build.build_prebuilt(Path({str(package / '_prebuilt')!r}))", {})
    assert build.returncode == 0, build.stderr
    assert (package / "_prebuilt" / "key.txt").read_text().startswith("torch ")
    # No compiler and no sources: only the prebuilt library can work.
    code = SCRIPT + "print('library', pygan._build.info().library)\n"
    env = {"CXX": "/nonexistent/c++", "PYGAN_REQUIRE_EXT": "1", "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600, env={**{k: v for k, v in os.environ.items()
                                              if not k.startswith("PYGAN_") and k != "PYTHONPATH"}, **env})
    assert out.returncode == 0, out.stderr
    assert "warnings 0 loaded True" in out.stdout
    assert os.path.join("_prebuilt", "pygan_ext.so") in out.stdout


# ---- The loader knows nothing about the ops (the ops register through on_load). ----


LOADER = ("pygan._build", "pygan._build_flags", "pygan._build_cache")  # the loader and its two parts


@pytest.mark.parametrize("name", LOADER)
def test_loader_does_not_import_the_ops(name):
    import ast
    import importlib

    tree = ast.parse(open(importlib.import_module(name).__file__).read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import in the loader"
            imported |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module or ""}
    # Nothing of pygan but the loader's own parts (``from pygan import _build_flags`` names "pygan" too).
    outside = {n for n in imported if n.startswith("pygan") and n != "pygan" and not n.startswith(LOADER)}
    assert not outside, imported


def test_fake_kernels_are_registered_when_the_loader_is_imported_first():
    code = textwrap.dedent("""
        import pygan._build as build
        assert build.load()
        import torch
        from torch._subclasses.fake_tensor import FakeTensorMode
        with FakeTensorMode():
            x = torch.empty(4, 3)
            out = torch.ops.pygan.interpolate(x, x, torch.empty(4))
            penalty, norms = torch.ops.pygan.grad_penalty(x, 1.0, False, "none")
        print("fake", tuple(out.shape), tuple(penalty.shape), norms.dtype)
    """)
    out = run_python(code, {"PYGAN_REQUIRE_EXT": "1"})
    assert out.returncode == 0, out.stderr
    assert "fake (4, 3) (4,) torch.float64" in out.stdout


def test_on_load_runs_a_hook_registered_after_loading():
    import pygan._build as build

    assert build.load()
    calls = []
    build.on_load(lambda: calls.append(1))
    assert calls == [1]


# ---- The build cache is verified before it is loaded (never a crash on a damaged library). ----


def _copy_of_the_build(tmp_path):
    import shutil

    import pygan._build as build

    assert build.load()
    source = build.info().build_dir
    assert os.path.isfile(os.path.join(source, "pygan_ext.json")), "the build records its hash"
    target = tmp_path / "build"
    shutil.copytree(source, target)
    return target


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _flip_bytes(path):
    data = bytearray(path.read_bytes())
    for i in range(4096, len(data), 997):  # past the ELF header: the loader still maps it
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _empty(path):
    path.write_bytes(b"")


@pytest.mark.parametrize("damage", [_truncate, _flip_bytes, _empty], ids=["truncated", "bit-flipped", "empty"])
def test_a_damaged_cached_library_is_rebuilt(tmp_path, damage):
    build = _copy_of_the_build(tmp_path)
    library = build / "pygan_ext.so"
    good = library.read_bytes()
    damage(library)
    out = run_python(SCRIPT, {"PYGAN_BUILD_DIR": str(build), "PYGAN_REQUIRE_EXT": "1"})
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])  # not SIGBUS / SIGSEGV
    assert "warnings 0 loaded True" in out.stdout
    assert "does not match its recorded hash" in out.stderr
    assert library.stat().st_size == len(good)  # linked again, and recorded again:
    out = run_python(SCRIPT, {"PYGAN_BUILD_DIR": str(build), "PYGAN_REQUIRE_EXT": "1"})
    assert out.returncode == 0 and "warnings 0 loaded True" in out.stdout
    assert "rebuilding" not in out.stderr


def test_a_read_only_cache_with_a_valid_build_is_used(tmp_path):
    build = _copy_of_the_build(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for path in [tmp_path, *tmp_path.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    # As root the permissions alone prove nothing: also make every write path of the loader fail.
    code = textwrap.dedent("""
        import torch.utils.cpp_extension as cpp_extension
        import pygan._build as build
        import pygan._build_cache as cache
        def refuse(*args, **kwargs):
            raise PermissionError("read-only cache")
        build._exclusive = cache.exclusive = refuse
        cpp_extension.load = refuse
        build._write_manifest = cache.write_manifest = refuse
    """) + SCRIPT + "print('verified', pygan._build.info().verified)\n"
    try:
        out = run_python(code, {"PYGAN_BUILD_DIR": str(build), "PYGAN_REQUIRE_EXT": "1"})
    finally:
        for path in [tmp_path, *tmp_path.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "warnings 0 loaded True" in out.stdout and "SHA-256 matches" in out.stdout
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no lock file, nothing written


def test_one_build_key_whatever_the_install_path(tmp_path):
    # A copy of the package and its sources elsewhere (as a script run outside the checkout sees an
    # installed pygan) must find the same build, not compile a second time.
    import shutil

    import pygan

    root = os.path.dirname(os.path.dirname(pygan.__file__))
    copy = tmp_path / "elsewhere"
    shutil.copytree(os.path.join(root, "pygan"), copy / "pygan", ignore=shutil.ignore_patterns("__pycache__", "_prebuilt"))
    # The sources: <checkout>/csrc, or pygan/csrc in an installed copy (then already copied above).
    from pygan import _build

    shutil.copytree(_build.source_dir(), copy / "pygan" / "csrc", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    code = ("from pygan import _build; s = _build._build_settings(); "
            "print('dir', _build._build_dir(s)); print('src', s['source_dir'])")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYGAN_") and k != "PYTHONPATH"}

    def run_in(path, script):  # from tmp_path, so the checkout is not importable from the cwd
        return subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                              timeout=600, env={**env, "PYTHONPATH": str(path), "PYGAN_REQUIRE_EXT": "1"})

    here, there = run_in(root, code), run_in(copy, code)
    assert here.returncode == 0 and there.returncode == 0, (here.stderr, there.stderr)
    assert str(copy) in there.stdout and str(copy) not in here.stdout  # each used its own sources
    assert here.stdout.splitlines()[0] == there.stdout.splitlines()[0]
    out = run_in(copy, SCRIPT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "warnings 0 loaded True" in out.stdout
    assert "compiling" not in out.stderr and "rebuilding" not in out.stderr


# ---- CUDA architectures: +PTX by default, recorded, and a library that cannot run is refused. ----


def test_arch_coverage():
    from pygan._build import arch_covers

    assert arch_covers("9.0", (9, 0))
    assert not arch_covers("9.0", (8, 0))  # no sm_80 code, and PTX never runs on an older GPU
    assert not arch_covers("9.0", (10, 0))  # machine code runs within its major version only
    assert arch_covers("9.0+PTX", (10, 0)) and arch_covers("9.0+PTX", (12, 0))
    assert arch_covers("8.0", (8, 6)) and arch_covers("8.0", (8, 9))  # binary compatible
    assert not arch_covers("8.6", (8, 0))
    assert arch_covers("7.5;8.0;9.0+PTX", (7, 5)) and arch_covers("7.5 8.0 9.0+PTX", (10, 3))
    assert arch_covers("9.0a", (9, 0)) and not arch_covers("9.0a", (9, 1))


def test_default_arch_list_ends_with_ptx(monkeypatch):
    from pygan import _build, _build_flags

    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    monkeypatch.setattr(_build_flags, "visible_capabilities", lambda: [])
    assert _build._cuda_arch_list().endswith("+PTX")
    assert _build.arch_covers(_build._cuda_arch_list(), (8, 0))  # an A100 without a visible GPU at build
    monkeypatch.setattr(_build_flags, "visible_capabilities", lambda: [(8, 9), (9, 0)])
    assert _build._cuda_arch_list() == "8.9;9.0+PTX"


def test_a_prebuilt_library_for_other_gpus_is_refused(tmp_path, monkeypatch):
    import json
    import shutil

    from pygan import _build, _build_cache

    assert _build.load()
    prebuilt = tmp_path / "_prebuilt"
    prebuilt.mkdir()
    shutil.copy2(os.path.join(_build.info().build_dir, "pygan_ext.so"), prebuilt / "pygan_ext.so")
    monkeypatch.setattr(_build_cache, "prebuilt_dir", lambda: prebuilt)
    _build._write_manifest(prebuilt, _build._prebuilt_key(), "9.0")
    assert _build._prebuilt_library([(9, 0)])[0] == prebuilt / "pygan_ext.so"
    library, why = _build._prebuilt_library([(8, 0)])
    assert library is None and "does not cover" in why and "8.0" in why
    # A library whose hash no longer matches is refused too (never dlopened).
    _flip_bytes(prebuilt / "pygan_ext.so")
    assert _build._prebuilt_library([(9, 0)])[0] is None
    assert json.loads((prebuilt / "pygan_ext.json").read_text())["arch"] == "9.0"
