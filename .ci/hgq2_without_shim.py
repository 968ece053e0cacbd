"""Write hgq2's wheel without its top-level ``qkeras`` package (docs/design.md, front ends).

hgq2 0.2.0 ships a Keras 3 compatibility shim named ``qkeras`` that, installed beside QKeras
0.9.0, overwrites QKeras's own files. hgq2 itself never imports the shim, so setup installs
this copy of the wheel instead: same version, same files, minus ``qkeras/`` (and its RECORD
lines). Usage: ``python hgq2_without_shim.py DOWNLOADED.whl OUT_DIR``; prints the new path.
"""

import pathlib
import sys
import zipfile

SHIM = "qkeras/"


def strip_shim(wheel: pathlib.Path, out_dir: pathlib.Path) -> pathlib.Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / wheel.name
    partial = target.with_suffix(".part")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename.startswith(SHIM):
                continue
            data = src.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines(keepends=True)
                data = "".join(line for line in lines if not line.startswith(SHIM)).encode()
            dst.writestr(info, data)
    partial.replace(target)
    return target


if __name__ == "__main__":
    print(strip_shim(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])))
