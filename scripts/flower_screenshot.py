"""Take docs/flower.png: a real replay job on the embedded system, watched by Flower, captured
with headless Chromium (Debian's `chromium` package). Run: python scripts/flower_screenshot.py"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.system import SHARED_DATA, running_system, short_tmpdir, write_catalog  # noqa: E402

AUTH = ("ops", "screenshot")


def main() -> None:
    from switchyard.datasets import load_dataset

    gsm8k = SHARED_DATA / "routing" / "routellm_gsm8k"
    ds = load_dataset(gsm8k)
    data_dir = short_tmpdir()
    catalog = write_catalog(data_dir / "catalog.yaml", providers={
        "replay": {"kind": "replay", "max_concurrency": 64, "options": {"dataset": str(gsm8k)}}},
        models=[{"id": m.model, "provider": "replay", "usd_per_mtok_input": m.usd_per_mtok_input,
                 "usd_per_mtok_output": m.usd_per_mtok_output} for m in ds.models])
    env = {"SWITCHYARD_DATA_DIR": str(data_dir), "SWITCHYARD_CATALOG_PATH": str(catalog),
           "SWITCHYARD_TAGGER": "null", "SWITCHYARD_POLICY": "cheapest"}
    with running_system(env) as system:
        flower = subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers.app", "flower", "--port=5599",
                                   "--address=127.0.0.1", f"--basic-auth={AUTH[0]}:{AUTH[1]}"],
                                  env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(6)
            lines = [json.dumps({"custom_id": p.prompt_id, "prompt": p.prompt}) for p in ds.prompts[:300]]
            job_id, outs, errs = system.run_job(lines)  # type: ignore[arg-type]
            print(f"job {job_id}: {len(outs)} results, {len(errs)} errors")
            time.sleep(3)
            n = len(httpx.get("http://127.0.0.1:5599/api/tasks", auth=AUTH).json())
            print(f"flower saw {n} tasks")
            out = REPO / "docs" / "flower.png"
            out.parent.mkdir(exist_ok=True)
            subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                            "--window-size=1500,950", f"--screenshot={out}",
                            f"http://{AUTH[0]}:{AUTH[1]}@127.0.0.1:5599/tasks"], check=True, timeout=120)
            print(f"wrote {out}")
        finally:
            flower.terminate()
            flower.wait(timeout=20)


if __name__ == "__main__":
    main()
