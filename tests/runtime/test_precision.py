"""Precision selection: auto follows native bf16; GEOSEEK_PRECISION and the CLI flag override."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from dataclasses import replace

import pytest

from geoseek.runtime import hardware, precision


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv(precision.ENV, raising=False)
    precision.reset()
    yield
    precision.reset()


def _fake_probe(monkeypatch, native: bool) -> None:
    real = hardware.probe()
    monkeypatch.setattr(hardware, "probe", lambda: replace(real, native_bf16=native))


@pytest.mark.parametrize("native, expected", [(True, "bfloat16"), (False, "float32")])
def test_auto_follows_native_bf16(monkeypatch, native, expected):
    _fake_probe(monkeypatch, native)
    assert precision.resolve_precision() == expected
    assert precision.effective_dtype("bfloat16") == expected
    assert precision.effective_dtype("float32") == "float32"


def test_env_and_flag_override(monkeypatch):
    _fake_probe(monkeypatch, True)
    monkeypatch.setenv(precision.ENV, "float32")
    assert precision.resolve_precision() == "float32"
    precision.set_precision("bfloat16")  # the flag wins over the environment
    assert precision.resolve_precision() == "bfloat16"
    monkeypatch.setenv(precision.ENV, "nonsense")
    precision.set_precision(None)
    with pytest.raises(ValueError, match="GEOSEEK_PRECISION"):
        precision.resolve_precision()


def test_explicit_bf16_on_non_native_warns_once(monkeypatch):
    _fake_probe(monkeypatch, False)
    precision.set_precision("bfloat16")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert precision.resolve_precision() == "bfloat16"
        assert precision.resolve_precision("bfloat16") == "bfloat16"
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1


def test_native_rule():
    flags = frozenset({"avx512f", "avx512_bf16"})
    assert hardware.is_native_bf16("AVX512", flags, True, "x86_64")
    assert not hardware.is_native_bf16("AVX2", flags, True, "x86_64")  # capped ISA
    assert not hardware.is_native_bf16("AVX512", frozenset({"avx512f"}), True, "x86_64")
    assert not hardware.is_native_bf16("AVX512", flags, False, "x86_64")  # oneDNN says no
    assert hardware.is_native_bf16("SVE256", frozenset({"bf16"}), True, "aarch64")


def _runtime_in_subprocess(env_extra: dict[str, str], *cli: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", precision.ENV)}
    env.update(env_extra)
    code = "import json,sys; from geoseek.runtime import describe_runtime; print(json.dumps(describe_runtime()))"
    if cli:
        code = ("import json; from geoseek.runtime.precision import set_precision; set_precision(%r); "
                "from geoseek.runtime import describe_runtime; print(json.dumps(describe_runtime()))" % cli[0])
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_capped_isa_picks_float32_in_a_subprocess():
    rt = _runtime_in_subprocess({"ATEN_CPU_CAPABILITY": "avx2"})
    assert rt["isa"] == "AVX2"
    assert rt["native_bf16"] is False
    assert rt["precision"] == "float32"
    assert set(rt) == {"cpu_model", "isa", "native_bf16", "precision", "inference", "threads", "cores_available"}
    assert rt["inference"] in ("onnx", "torch")


def test_cli_flag_sets_precision(capsys):
    from geoseek.cli import main

    try:
        rc = main(["--precision", "float32", "bench", "contention", "--scale", "0"])  # rejected after parsing
        assert rc == 2
        assert precision.resolve_precision() == "float32"
        assert os.environ[precision.ENV] == "float32"
    finally:
        os.environ.pop(precision.ENV, None)
    assert "--scale must be in (0, 1]" in capsys.readouterr().err


def test_backbone_runs_float32_where_bf16_is_not_native(monkeypatch):
    import torch

    from geoseek.encoders import sketch_image as si

    _fake_probe(monkeypatch, False)
    seen = []
    monkeypatch.setattr(si, "frozen_image_backbone", lambda dtype="float32": seen.append(dtype) or None)
    monkeypatch.setattr(si, "_backbone_in", lambda dtype: seen.append(dtype) or si.image_backbone())
    out = si.image_backbone_features(torch.rand(1, 3, 64, 64), dtype="bfloat16")
    assert out.dtype == torch.float32
    assert seen and set(seen) == {"float32"}
