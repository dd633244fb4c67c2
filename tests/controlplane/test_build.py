"""Where the control plane's binaries come from: KUBE_BINARIES_DIR as it is, or the cache,
built whole or not at all."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from infra import gobuild
from infra.local.controlplane import build


def test_a_binaries_dir_is_used_as_it_is(monkeypatch, tmp_path):
    for name in build.COMMANDS:
        (tmp_path / name).write_text("#!/bin/sh\n")
    monkeypatch.setenv("KUBE_BINARIES_DIR", str(tmp_path))
    assert build.binaries_dir() == tmp_path


def test_a_binaries_dir_missing_one_is_named(monkeypatch, tmp_path):
    (tmp_path / "etcd").write_text("#!/bin/sh\n")
    monkeypatch.setenv("KUBE_BINARIES_DIR", str(tmp_path))
    with pytest.raises(build.BuildError, match="lacks kube-apiserver, kube-controller-manager"):
        build.binaries_dir()


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    broken = replace(build.TOOLSET, commands={"etcd": "example.com/no/such/package"})
    folder = tmp_path / "control-plane" / "release"
    with pytest.raises(build.BuildError, match="building etcd failed"):
        gobuild.build(broken, folder)
    assert list((tmp_path / "control-plane").iterdir()) == []


def test_the_cache_is_keyed_by_what_the_binaries_are_built_from(monkeypatch, tmp_path):
    monkeypatch.setenv("KTR_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("KUBE_BINARIES_DIR", raising=False)
    folder = tmp_path / "control-plane" / f"{build.RELEASE}-{build.TOOLSET.source_hash()}"
    folder.mkdir(parents=True)
    for name in build.COMMANDS:
        (folder / name).write_text("#!/bin/sh\n")
    assert build.binaries_dir() == folder  # found: nothing is built
    assert Path(build.HERE / "go.mod").read_text().count(f"k8s.io/kubernetes {build.RELEASE}")
