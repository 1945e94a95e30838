"""A built model becomes a site: the browser runtime next to model/, and index.html from the
page template (if there is one) with the model card."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import jinja2
from bitnet_wasm.web import WEB_DIR

RUNTIME_GLOBS = ("*.js", "*.d.ts", "*.css")
TEMPLATE = "index.html.j2"
BITS_PER_WEIGHT = {"mad": 1.58, "lut": 1.58, "binary": 1}  # the nominal bits of the model's linear layers
NOT_PARAMETERS = {"wscale", "q8_scale", "q7_scale"}                     # per-tensor scales (mirrored in worker.js)


def model_card(manifest: dict) -> dict:
    parameters = sum(math.prod(t["shape"]) for t in manifest["tensors"].values() if t["layout"] not in NOT_PARAMETERS)
    return {
        "name": manifest["model"]["name"],
        "parameters": parameters,
        "bits_per_weight": BITS_PER_WEIGHT.get(manifest["build"]["linear_layout"].split("+")[0]),  # "lut+mad": mixed, all ternary
        "download_mb": sum(s["bytes"] for s in manifest["shards"]) / 1e6,
    }


def write_site(site_dir: Path, manifest: dict, coi_service_worker: bool = False) -> None:
    """The runtime and index.html next to model/; coi_service_worker: the page registers coi-sw.js,
    which makes it cross-origin isolated (threads) on hosts that cannot send COOP/COEP headers."""
    site_dir = Path(site_dir)
    for pattern in RUNTIME_GLOBS:
        for path in WEB_DIR.glob(pattern):
            shutil.copyfile(path, site_dir / path.name)
    templates = WEB_DIR / "templates"
    if (templates / TEMPLATE).is_file():
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(templates), autoescape=True, undefined=jinja2.StrictUndefined)
        html = env.get_template(TEMPLATE).render(manifest=manifest, card=model_card(manifest), coi_service_worker=coi_service_worker)
        (site_dir / "index.html").write_text(html)
