#!/usr/bin/env bash
# Run HERE (with internet to the package index), before a GPU session's device call: fetch the
# Python 3.12 wheels the GPU machine lacks into .whl/ (git-ignored via .git/info/exclude), with
# dm_control's large example assets (soccer, locomotion walkers, dog, tests) left out so the
# folder stays under the device tool's 64 MiB. Then: `run` with carry [".whl"] and
# `bash benchmarks/gpu/check.sh`.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
  gymnasium==1.4.0 farama-notifications==0.0.6 mujoco==3.17.0 dm_control==1.0.50 dm-env==1.6 dm-tree==0.1.10 \
  labmaze==1.0.6 glfw==2.11.0 PyOpenGL==3.1.10 Shimmy==2.0.1 stable_baselines3==2.9.2 sb3_contrib==2.9.2 \
  zuko==1.6.0 cloudpickle==3.1.3
python3 - <<'PY'
"""Rewrite the dm_control wheel without the assets no NeuralSim robot reads (RECORD updated)."""
import glob, zipfile
path = glob.glob(".whl/dm_control-*.whl")[0]
drop = ("dm_control/locomotion/soccer/", "dm_control/locomotion/walkers/assets/", "dm_control/suite/dog_assets/",
        "dm_control/mujoco/testing/", "dm_control/blender/", "dm_control/suite/all_domains.png")
with zipfile.ZipFile(path) as src:
    items = [(i, src.read(i)) for i in src.infolist()]
kept = [(i, data) for i, data in items if not (i.filename.startswith(drop) and not i.filename.endswith(".py"))]
names = {i.filename for i, _ in kept}
with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
    for info, data in kept:
        if info.filename.endswith(".dist-info/RECORD"):
            lines = [l for l in data.decode().splitlines() if l.split(",")[0] in names or l.split(",")[0].endswith("RECORD")]
            data = ("\n".join(lines) + "\n").encode()
        out.writestr(info, data)
PY
du -sh .whl
