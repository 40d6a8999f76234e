"""Fill the README's figure tables from the shipped checkpoints and benchmarks/results/.

Every figure in those tables is produced by a command recorded next to it
(``neural-sim benchmark``, ``neural-sim benchmark-density``, ``neural-sim bench-speed``,
``benchmarks/compare_density.py``); this script only copies them into the README.

    python benchmarks/readme_tables.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAPER = {"acrobot": "0.0001 / 0.1043", "cheetah": "0.1206 / 0.2185", "reacher": "0.0005 / 0.0009",
         "hopper": "0.0375 / 0.2507"}


def shipped() -> list[tuple[str, dict]]:
    folders = sorted(p for p in (ROOT / "checkpoints").iterdir() if (p / "config.json").is_file())
    return [(p.name, json.loads((p / "config.json").read_text())) for p in folders]


def accuracy_table() -> str:
    rows = ["| robot | H=3 | H=16 | H=100 | hold-last-state H=16 | paper MoSim H=16 / H=100 "
            "| trusted horizon (steps) |", "|---|---|---|---|---|---|---|"]
    for name, config in shipped():
        if "horizons" not in config["benchmark"]:
            continue  # not benchmarked yet
        h = config["benchmark"]["horizons"]
        rows.append(f"| {name} | {h['3']['mse']:.2e} | {h['16']['mse']:.2e} | {h['100']['mse']:.2e} | "
                    f"{h['16']['hold_last_state_mse']:.3g} | {PAPER.get(name, '-')} | {config['trusted_horizon']} |")
    return "\n".join(rows)


def density_table() -> str:
    rows = ["| robot | AUROC perturbed | AUROC controller | Spearman(penalty, one-step error) | env step off / on |",
            "|---|---|---|---|---|"]
    for name, config in shipped():
        if "density" not in config["benchmark"]:
            continue  # no density figures yet
        d = config["benchmark"]["density"]
        cost = d["step_cost"]
        rows.append(f"| {name} | {d['auroc']['perturbed']:.3f} | {d['auroc']['controller']:.3f} | "
                    f"{d['spearman_penalty_vs_one_step_error']:.3f} | {cost['off_ms']:.2f} / {cost['on_ms']:.2f} ms "
                    f"(+{100 * cost['overhead']:.0f}%) |")
    return "\n".join(rows)


def flow_table() -> str:
    rows = ["| robot | flow | AUROC perturbed | AUROC controller | Spearman | log p cost, batch 1 | fit time |",
            "|---|---|---|---|---|---|---|"]
    for path in sorted((ROOT / "benchmarks" / "results").glob("density_comparison_*.json")):
        for robot, flows in json.loads(path.read_text())["results"].items():
            for kind, v in flows.items():
                rows.append(f"| {robot} | {kind} | {v['auroc']['perturbed']:.3f} | {v['auroc']['controller']:.3f} | "
                            f"{v['spearman_penalty_vs_one_step_error']:.3f} | {v['log_density_ms_batch1']:.2f} ms | "
                            f"{v['fit_s']:.0f} s |")
    return "\n".join(rows)


def speed_table() -> str:
    path = ROOT / "benchmarks" / "results" / "speed_cpu.json"
    if not path.is_file():
        return "(run `neural-sim bench-speed --json benchmarks/results/speed_cpu.json`)"
    results = json.loads(path.read_text())
    sizes = list(results[0]["batched"])
    rows = ["| id | step (ms) | shimmy step (ms) | SAC update / step | "
            + " | ".join(f"N={n} steps/s (x shimmy)" for n in sizes) + " |",
            "|---|---|---|---|" + "---|" * len(sizes)]
    for r in results:
        cells = []
        for n in sizes:
            b = r["batched"][n]
            ratio = f" (x{b['ratio']:.1f})" if b["ratio"] else " (shimmy not run)"
            cells.append(f"{b['neural_steps_per_s']:,.0f}{ratio}")
        rows.append(f"| `{r['env_id']}` | {r['single_env_ms']['neural']:.3f} | {r['single_env_ms']['shimmy']:.3f} | "
                    f"{r['sac_update_over_neural_step']:.0f} | " + " | ".join(cells) + " |")
    rows.append("")
    rows.append(f"Measured with `{results[0]['command']}` ({results[0]['machine']}).")
    return "\n".join(rows)


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    for tag, table in (("benchmark-table", accuracy_table()), ("density-table", density_table()),
                       ("flow-comparison", flow_table()), ("speed-table", speed_table())):
        text = re.sub(f"<!-- {tag} -->.*?<!-- /{tag} -->", f"<!-- {tag} -->\n{table}\n<!-- /{tag} -->", text,
                      flags=re.S)
    readme.write_text(text)


if __name__ == "__main__":
    main()
