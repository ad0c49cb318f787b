"""A disk that fills while a GGUF file is written: one line, exit 2, and nothing left behind
that looks like an export (the partial file goes with its hidden temp directory)."""

import resource
import subprocess
import sys


def _limit_file_size():
    # 2 MiB per file: the header and vocabulary fit, the tensors do not
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, 2 << 20))


def test_disk_full_mid_gguf_write_removes_the_partial_file(tiny_model_dir, tmp_path):
    out = tmp_path / "exports" / "nova"
    proc = subprocess.run(
        [sys.executable, "-m", "tunesmith.cli", "export", f"model_name_or_path={tiny_model_dir}",
         f"export_dir={out}", "export_format=gguf", "export_quantization=f16", "dtype=fp32"],
        capture_output=True, text=True, timeout=600, preexec_fn=_limit_file_size)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert lines[-1].startswith("error: no space left on device while writing the export to")
    assert "partial files were removed" in lines[-1] and "Traceback" not in proc.stderr
    assert list((tmp_path / "exports").iterdir()) == []  # no export, no .nova.partial-* dir
