"""A crafted or damaged bundle is refused in one line, exit 1, before it serves: every command that
loads a bundle, and `lablr serve` before any worker starts. Each bundle here is a copy of the shipped
openclipart-effnet (the pretrained encoder with full tag statistics) with one file changed and the
manifest's checksums resealed, as an attacker would."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import arrays, photo
from lablr_server import free_port

from lablr.core import defaults
from lablr.core.bundle import bundled_root
from lablr.core.cli import cli

BUNDLE = bundled_root() / defaults.BENCHMARK_MODEL
ORIGINAL = bundled_root() / defaults.ORIGINAL_MODEL


def resealed(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"] = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                         for p in sorted(bundle.iterdir()) if p.name != "manifest.json" and p.is_file()}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


def with_arrays(bundle, name, **changes):
    data = {**arrays(bundle / name), **changes}
    np.savez_compressed(bundle / name, **data)


def nan_in(array):
    array = array.astype(np.float64)
    array.flat[len(array.flat) // 2] = np.nan
    return array


def zipped_zeros(path, tags: int, dim: int):
    """Tag statistics of `tags` tags that compress to almost nothing: only their headers say how big."""
    upper = dim * (dim + 1) // 2
    zipped_arrays(path, {}, tags=((tags,), "<U8"), counts=((tags,), "<f8"), sums=((tags, dim), "<f8"),
                  outer_upper=((tags, upper), "<f8"))


def zipped_arrays(path, arrays_by_name, **zeros):
    """An .npz of these arrays, and of arrays of zeros that compress to almost nothing ({name: (shape, dtype)})."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays_by_name.items():
            with archive.open(name + ".npy", "w") as file:
                np.lib.format.write_array(file, array)
        for name, (shape, dtype) in zeros.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as file:
                np.lib.format.write_array_header_1_0(file, {"descr": dtype, "fortran_order": False, "shape": shape})
                size = int(np.prod(shape)) * np.dtype(dtype).itemsize
                for _ in range(size // (1 << 24)):
                    file.write(bytes(1 << 24))
                file.write(bytes(size % (1 << 24)))


def craft(kind, bundle):
    """Change one thing in a copy of the default bundle, as the issue's red team did."""
    lite, stats, encoder_pca = bundle / "effnet.tflite", bundle / "tag_stats.npz", bundle / "effnet_pca.npz"
    if kind == "garbage tflite":
        lite.write_bytes(os.urandom(lite.stat().st_size))
    elif kind == "truncated tflite":
        lite.write_bytes(lite.read_bytes()[: lite.stat().st_size // 2])
    elif kind == "tflite of another output size":
        shutil.copyfile(ORIGINAL / "encoder.tflite", lite)  # the VAE's: 32 numbers, not 1,280 features
    elif kind == "NaN in the tag statistics":
        with_arrays(bundle, "tag_stats.npz", sums=nan_in(arrays(stats)["sums"]))
    elif kind == "inf in the tag counts":
        with_arrays(bundle, "tag_stats.npz", counts=arrays(stats)["counts"] + np.inf)
    elif kind == "NaN in the encoder's PCA":
        with_arrays(bundle, "effnet_pca.npz", components=nan_in(arrays(encoder_pca)["components"]))
    elif kind == "covariances not positive definite":
        with_arrays(bundle, "tag_stats.npz", outer_upper=-np.abs(arrays(stats)["outer_upper"]))
    elif kind == "tag statistics of another dimension":
        data = arrays(stats)
        upper = np.triu_indices(16)
        full = np.zeros((len(data["counts"]), 16, 16))
        with_arrays(bundle, "tag_stats.npz", sums=data["sums"][:, :16], outer_upper=full[:, upper[0], upper[1]])
    elif kind == "5,000 tags of zipped zeros":
        zipped_zeros(stats, 5_000, 128)  # over the bound of tags x dimensions²: 82 million numbers
    elif kind == "tag names of 1,000 characters":
        data = arrays(stats)
        with_arrays(bundle, "tag_stats.npz", tags=np.array([tag + "x" * 1000 for tag in data["tags"]]))
    elif kind == "a tag named with a right-to-left override":
        tags = arrays(stats)["tags"].astype(object)
        tags[0] = "\u202egnp.exe"  # shown reversed: "exe.png"
        with_arrays(bundle, "tag_stats.npz", tags=tags.astype(str))
    elif kind == "a 1.6 GB checksum in the encoder's PCA, of zipped zeros":
        data = arrays(encoder_pca)
        zipped_arrays(encoder_pca, {k: v for k, v in data.items() if k != "weights_sha256"},
                      weights_sha256=((), "<U400000000"))
    elif kind == "a manifest of 2 GB":
        resealed(bundle)
        with open(bundle / "manifest.json", "r+b") as file:
            file.truncate(2 << 30)  # the JSON, then zeros (a sparse file: nothing is written)
        return bundle
    elif kind == "a FIFO for the picture's PCA":
        (bundle / "pca.npz").unlink()
        resealed(bundle)
        os.mkfifo(bundle / "pca.npz")
        return bundle
    elif kind == "a symbolic link for the tag statistics":
        shutil.move(stats, bundle.parent / "elsewhere.npz")
        resealed(bundle)
        stats.symlink_to(bundle.parent / "elsewhere.npz")
        return bundle
    elif kind == "a FIFO for the manifest":
        (bundle / "manifest.json").unlink()
        os.mkfifo(bundle / "manifest.json")
        return bundle
    elif kind == "a file the manifest does not list":
        resealed(bundle)
        (bundle / "extra.npz").write_bytes(b"")
        return bundle
    return resealed(bundle)


KINDS = ["garbage tflite", "truncated tflite", "tflite of another output size", "NaN in the tag statistics",
         "inf in the tag counts", "NaN in the encoder's PCA", "covariances not positive definite",
         "tag statistics of another dimension", "5,000 tags of zipped zeros", "a FIFO for the picture's PCA",
         "a symbolic link for the tag statistics", "a file the manifest does not list", "a FIFO for the manifest",
         "tag names of 1,000 characters", "a tag named with a right-to-left override"]


@pytest.fixture
def crafted(tmp_path, request):
    bundle = tmp_path / "crafted"
    shutil.copytree(BUNDLE, bundle)
    shutil.copy(bundled_root() / defaults.DEFAULT_MODEL / "effnet.tflite", bundle)  # its network, in the bundle
    return craft(request.param, bundle)


def run_measured(command, timeout):
    """(stdout and stderr, wait status, resource usage) of a command: its own peak memory, not the largest of every
    child the test process had before (RUSAGE_CHILDREN)."""
    with tempfile.TemporaryFile("w+") as output:
        child = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, text=True)
        for _ in range(int(timeout / 0.1)):
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.1)
        else:
            child.kill()
            _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
        output.seek(0)
        return output.read(), status, usage


def assert_one_line_refusal(exit_code, output):
    assert exit_code == 1, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in output, output
    assert "(nan)" not in output


def refusal(crafted, tmp_path, command):
    image = tmp_path / "photo.png"
    image.write_bytes(photo())
    arguments = {"suggest": [str(image)], "plot": [str(image), "-o", str(tmp_path / "p.png")],
                 "tag": ["--dry-run", str(image)]}[command]
    result = CliRunner().invoke(cli, [command, *arguments, "--model", str(crafted)])
    assert_one_line_refusal(result.exit_code, result.output)


@pytest.mark.parametrize("crafted", KINDS, indirect=True)
def test_a_crafted_bundle_is_refused_in_one_line(crafted, tmp_path):
    refusal(crafted, tmp_path, "suggest")


@pytest.mark.parametrize("crafted", ["NaN in the tag statistics"], indirect=True)
@pytest.mark.parametrize("command", ["plot", "tag"])
def test_every_command_that_loads_a_bundle_refuses_it(crafted, tmp_path, command):
    refusal(crafted, tmp_path, command)


@pytest.mark.parametrize("crafted", ["garbage tflite", "NaN in the tag statistics", "a FIFO for the picture's PCA",
                                     "5,000 tags of zipped zeros",
                                     "a 1.6 GB checksum in the encoder's PCA, of zipped zeros", "a manifest of 2 GB"],
                         indirect=True)
def test_serve_refuses_a_crafted_bundle_before_any_worker_starts(crafted):
    port = str(free_port())
    output, status, usage = run_measured([sys.executable, "-m", "lablr.core.cli", "serve", "--port", port,
                                          "--model", str(crafted)], timeout=120)
    assert_one_line_refusal(os.waitstatus_to_exitcode(status), output)
    assert "Lablr is serving" not in output
    assert usage.ru_maxrss * 1024 < 2e9  # reading the zipped zeros and deriving covariances from them took more than 4 GB


@pytest.mark.parametrize("change", ["more pairs than the bound", "tags that are numbers", "NaN temperature",
                                    "an empty tag"])
def test_a_crafted_photo_vocabulary_is_refused_in_one_line(tmp_path, change):
    bundle = tmp_path / "crafted"
    shutil.copytree(bundled_root() / defaults.DEFAULT_MODEL, bundle)
    pairs = 200_000  # over the bound: 100 tags for each of the 1,000 classes
    changes = {"more pairs than the bound": {"tags": np.full(pairs, "t"), "classes": np.zeros(pairs, np.int16),
                                             "tag_of": np.arange(pairs)},
               "tags that are numbers": {"tags": np.arange(len(arrays(bundle / "concept_tags.npz")["tags"]))},
               "NaN temperature": {"temperature": np.float64(np.nan)},
               "an empty tag": {"tags": np.array(["", *arrays(bundle / "concept_tags.npz")["tags"][1:]])}}[change]
    with_arrays(bundle, "concept_tags.npz", **changes)
    refusal(resealed(bundle), tmp_path, "suggest")
