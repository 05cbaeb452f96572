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
