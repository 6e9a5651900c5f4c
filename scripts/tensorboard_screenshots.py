"""Screenshots of TensorBoard's views over a run or sweep folder, taken by headless Chromium.

The README's pictures come from this script, so they show what TensorBoard really draws:

    python scripts/tensorboard_screenshots.py --logdir outputs/train/multiruns/<sweep> --out docs \
        --views custom_scalars "images&regexInput=3_&tagFilter=confusion" hparams

A view is a dashboard's name, optionally followed by the settings TensorBoard keeps in the page
address (``&tagFilter=<regex>``, ``&regexInput=<run regex>``, ``&_smoothingWeight=0``); the
picture is ``<prefix><dashboard>.png``.

Chromium is Debian's ``chromium`` package (``apt-get install chromium``). TensorBoard runs on a
free port of 127.0.0.1 for the time of the screenshots only.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

VIEWS = ("timeseries", "custom_scalars", "scalars", "images", "hparams")
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# A local server must not be reached through a proxy from the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_runs(base: str, process: subprocess.Popen, timeout: float = 120) -> list[str]:
    """Poll until TensorBoard lists runs with scalars (it reads the event files first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit("TensorBoard exited before it served the runs")
        try:
            with OPENER.open(f"{base}/data/plugin/scalars/tags", timeout=10) as answer:
                runs = sorted(json.loads(answer.read()))
            if runs:
                return runs
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"TensorBoard served no runs in {timeout:.0f} s")


def screenshot(browser: str, url: str, path: Path, width: int, height: int) -> None:
    with tempfile.TemporaryDirectory() as profile:  # no state from an earlier screenshot
        command = [
            browser, "--headless", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={profile}", f"--window-size={width},{height}",
            # Time for TensorBoard's page to fetch and draw its charts before the picture.
            "--virtual-time-budget=20000", f"--screenshot={path}", url,
        ]  # fmt: skip
        if os.geteuid() == 0:
            command.insert(1, "--no-sandbox")  # Chromium refuses to run as root with it
        subprocess.run(command, check=True, capture_output=True, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", type=Path, required=True, help="a run or sweep folder")
    parser.add_argument("--out", type=Path, default=Path("docs"), help="where the PNGs go")
    parser.add_argument("--prefix", default="tensorboard_", help="file names: <prefix><view>.png")
    parser.add_argument("--views", nargs="+", default=list(VIEWS), help=f"of {', '.join(VIEWS)}")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args()
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    if browser is None:
        sys.exit(f"No Chromium found ({', '.join(BROWSERS)}): apt-get install chromium")
    unknown = [view for view in args.views if view.split("&")[0] not in VIEWS]
    if unknown:
        sys.exit(f"Unknown views {unknown}: each must start with one of {', '.join(VIEWS)}")
    if not args.logdir.is_dir():
        sys.exit(f"--logdir {args.logdir} is not a folder")
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = ["--logdir", str(args.logdir), "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", *serve, "--load_fast=false"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        runs = wait_for_runs(base, process)
        print(f"TensorBoard at {base} serves {len(runs)} runs: {', '.join(runs)}")
        for view in args.views:
            path = args.out / f"{args.prefix}{view.split('&')[0]}.png"
            screenshot(browser, f"{base}/#{view}", path.resolve(), args.width, args.height)
            print(f"{view}: {path}")
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
