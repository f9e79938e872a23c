"""The `fpar` command line against the running stack: train and watch to the end, list,
predict with CAMs saved, ingest recordings into a dataset (from a folder, or an uploaded
archive) and show it, a timeline of a long video watched live and saved, and API errors
printed as their problem with exit code 1."""
import csv
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
from PIL import Image

from fpar_models.data.recordings import write_recording
from launcher import free_port

from stack_helpers import TINY, tiny_train, wait_for, write_incoming

ROOT = Path(__file__).resolve().parents[1]


def fpar(stack, *args: str, timeout: float = 300, columns: int = 160) -> subprocess.CompletedProcess:
    env = {**os.environ, "FPAR_URL": stack.url, "COLUMNS": str(columns)}
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_console_script_is_installed():
    script = Path(sys.executable).parent / "fpar"
    assert script.is_file(), "make install puts `fpar` in the environment"
    r = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "predict" in r.stdout


def test_train_with_overrides_and_watch_to_the_end(stack, client):
    overrides = [f"--set={k}={json.dumps(v)}" for k, v in TINY.items() if k != "dataset"]
    r = fpar(stack, "train", "--preset", "egornn-attention", "--dataset", "synthetic", *overrides,
             "--set", "stages.0.epochs=2", "--set", "stages.1.epochs=1", "--set", "stages.1.lr=0.0005", "--watch")
    assert r.returncode == 0, r.stdout + r.stderr
    job_id = r.stdout.split("queued ")[1].split()[0]
    job = client.get(f"/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["request"]["stages"][1]["lr"] == 0.0005
    assert f"model {job['result']['model']}" in r.stdout
    rows = [line.split() for line in r.stdout.splitlines() if line.split()[:2] in (["1", "1"], ["1", "2"], ["2", "1"])]
    assert len(rows) == 3, r.stdout  # a row per epoch, as the events came

    listed = [j["id"] for j in json.loads(fpar(stack, "jobs", "--kind", "train", "--json").stdout)]
    assert job_id in listed
    shown = ids_in_table(fpar(stack, "jobs", "--kind", "train", columns=80), 80)
    assert shown == listed  # each whole, as a user copies it from an 80-column terminal
    again = fpar(stack, "watch", shown[listed.index(job_id)])  # late: the rows so far, then the end
    assert again.returncode == 0 and "succeeded" in again.stdout

    model_id = job["result"]["model"]
    listed = [m["id"] for m in json.loads(fpar(stack, "models", "--json").stdout)]
    shown = ids_in_table(fpar(stack, "models", columns=80), 80)
    assert shown == listed
    deleted = fpar(stack, "delete", shown[listed.index(model_id)])
    assert deleted.returncode == 0 and client.get(f"/models/{model_id}").status_code == 404, deleted.stderr

def ids_in_table(r: subprocess.CompletedProcess, columns: int) -> list[str]:
    """The first column of a listing's rows (a row that wraps leaves it blank on its next
    lines), once it is checked that no line is wider than the terminal."""
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(map(len, lines)) <= columns, r.stdout
    return [m[1] for line in lines if (m := re.match(r"[│|] *([^\s│|]+)", line)) and m[1] != "id"]


def test_predict_prints_the_ranking_and_saves_the_cams(stack, client, trained, tmp_path):
    model_id = trained["result"]["model"]
    frames = sorted((stack.data_dir / "synthetic/processed_frames2/S2/lift_cup/1/rgb").glob("*.png"))
    r = fpar(stack, "predict", *map(str, frames), "--model", model_id, "--top-k", "3", "--explain", str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    want = client.post("/predict", files=[("frames", (f.name, f.read_bytes())) for f in frames],
                       data={"model": model_id, "wait": "60", "top_k": "3"}).json()["result"]["top_k"]
    shown = [r.stdout.index(f" {row['label']} ") for row in want]  # each action, ranked as /predict ranks it
    assert shown == sorted(shown), r.stdout
    cams = sorted(tmp_path.glob("cam_*.png"))
    assert len(cams) == client.get(f"/models/{model_id}").json()["frames"]
    assert Image.open(cams[0]).size[0] > 0

    models = json.loads(fpar(stack, "models", "--json").stdout)
    assert model_id in [m["id"] for m in models]


def test_an_experiment_submitted_watched_and_listed(stack, client, tmp_path):
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"name": "stage-2 lr from the command line", "base": tiny_train(),
                                "grid": {"stages.1.lr": [1e-4, 1e-3]}, "trials": 1}))
    r = fpar(stack, "experiment", "submit", str(grid), "--watch")
    assert r.returncode == 0, r.stdout + r.stderr
    exp_id = r.stdout.split("queued ")[1].split(":")[0]
    progress = [line for line in r.stdout.splitlines() if line.endswith(" ended")]
    assert progress[-1] == "3/3 ended" and progress == sorted(set(progress)), r.stdout  # each figure once, as sent
    exp = client.get(f"/experiments/{exp_id}").json()
    assert exp["progress"] == {"ended": 3, "total": 3}  # the two children and the stage 1 they share
    assert "after 1 shared stage, 3 epochs in all (4 with each job alone)" in r.stdout, r.stdout
    shared = exp["shared"][0]["id"]
    assert f"{shared} shared stage 1-1 of 2 jobs: succeeded" in r.stdout, r.stdout
    assert r.stdout.index(f"{shared} shared stage 1-1 of 2 jobs: running") < r.stdout.index(
        f"{exp['jobs'][0]['id']} ") < r.stdout.index("| stages.1.lr |")  # it ran first

    shown = fpar(stack, "experiment", "list", columns=80)
    assert exp_id in ids_in_table(shown, 80)
    assert any(exp_id in line and "3/3" in line for line in shown.stdout.splitlines()), shown.stdout
    csv = fpar(stack, "experiment", "table", exp_id, "--format", "csv", columns=20).stdout  # data, never wrapped
    assert csv.strip().splitlines() == client.get(f"/experiments/{exp_id}/table?format=csv").text.strip().splitlines()


def test_api_errors_are_printed_as_problems(stack):
    r = fpar(stack, "cancel", "tr_0000000000000000")
    assert r.returncode == 1 and "Not Found (404)" in r.stderr and "tr_0000000000000000" in r.stderr, r.stderr
    r = fpar(stack, "train", "--preset", "no-such-preset", "--dataset", "synthetic")
    assert r.returncode == 1 and "(422)" in r.stderr and "preset" in r.stderr, r.stderr
    r = fpar(stack, "train", "--set", "oops")
    assert r.returncode != 0 and "PATH=VALUE" in r.stderr


def test_watch_rides_out_a_gateway_restart(stack, client):
    """Event streams are open connections: the gateway drops them when it stops (after 5 s
    of graceful shutdown, or at once when killed); `watch` resumes from the last event."""
    job_id = client.post("/train", json=tiny_train(epochs=(16, 1))).json()["id"]
    env = {**os.environ, "FPAR_URL": stack.url, "COLUMNS": "160"}
    watching = subprocess.Popen([sys.executable, "-m", "cli", "watch", job_id], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(client, job_id, statuses=("running",))
    time.sleep(2)
    stack.kill("gateway")  # the supervisor starts it again
    deadline = time.monotonic() + 60
    while not answers(stack.url):
        assert time.monotonic() < deadline, "the gateway did not come back"
        time.sleep(0.3)
    out, err = watching.communicate(timeout=300)
    assert watching.returncode == 0, out + err
    job = client.get(f"/jobs/{job_id}").json()
    rows = [line.split()[:2] for line in out.splitlines() if line[:5].strip().isdigit()]
    assert rows == [[str(r["stage"]), str(r["epoch"])] for r in job["metrics"]], out  # each epoch once, in order
    assert "succeeded" in out


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_api_key_comes_from_fpar_api_key(stack, trained):
    url = stack.add_gateway("gateway-cli-keys", free_port(), {"FPAR_API_KEYS": "cli-key-93a1"})
    try:
        def models(**env):
            run_env = {**os.environ, "FPAR_URL": url, **env}
            return subprocess.run([sys.executable, "-m", "cli", "models", "--json"], cwd=ROOT, env=run_env,
                                  capture_output=True, text=True, timeout=120)

        refused = models()
        assert refused.returncode == 1 and "Unauthorized (401)" in refused.stderr, refused.stderr
        allowed = models(FPAR_API_KEY="cli-key-93a1")
        assert allowed.returncode == 0 and trained["result"]["model"] in allowed.stdout, allowed.stderr
    finally:
        stack.remove("gateway-cli-keys")


def test_dataset_ingest_watch_list_show_and_delete(stack, client):
    source = write_incoming(stack, "cli_kitchen", {"S1": ["lift_cup", "open_box"], "S2": ["lift_cup", "open_box"]})
    r = fpar(stack, "dataset", "ingest", "cli_kitchen", "--source", source, "--shorter-side", "32", "--flow", "dis",
             "--watch", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    job_id = r.stdout.split("queued ")[1].split(":")[0]
    assert "4 videos" in r.stdout.splitlines()[0], r.stdout
    progress = [line.split()[1] for line in r.stdout.splitlines() if line.startswith(f"{job_id} ")]
    assert progress[-1] == "4/4" and progress == sorted(set(progress)), r.stdout  # piped: a line per change
    assert "succeeded: dataset cli_kitchen" in r.stdout and "videos per class and user" in r.stdout, r.stdout
    assert client.get(f"/jobs/{job_id}").json()["status"] == "succeeded"

    listed = {d["name"]: d for d in json.loads(fpar(stack, "dataset", "list", "--json").stdout)}
    assert listed["cli_kitchen"]["status"] == "ready" and listed["cli_kitchen"]["videos"] == 4
    table = fpar(stack, "dataset", "list", columns=80)
    assert set(ids_in_table(table, 80)) >= {"synthetic", "cli_kitchen"}  # names whole, in 80 columns
    wide = fpar(stack, "dataset", "list").stdout  # 160 columns: all of them
    row = [c.strip() for c in next(line for line in wide.splitlines() if "cli_kitchen" in line).strip("│").split("│")]
    frames = str(client.get(f"/jobs/{job_id}").json()["result"]["frames"])
    assert row == ["cli_kitchen", "ready", "S1, S2", "2", "4", frames, "yes", "yes", "0", "ingested"], wide

    shown = fpar(stack, "dataset", "show", "cli_kitchen")
    assert shown.returncode == 0, shown.stderr
    cells = [[c.strip() for c in line.strip("│┃").split(line[0])] for line in shown.stdout.splitlines()
             if line[:1] in "│┃"]
    assert cells == [["class", "S1", "S2", "all"], ["lift_cup", "1", "1", "2"], ["open_box", "1", "1", "2"]], shown.stdout
    assert "warnings (4)\n  first-map-missing (4)" in shown.stdout and "... and 1 more like these" in shown.stdout
    assert f"source: {source}, labels labels.csv" in shown.stdout and "flow dis (bound 20" in shown.stdout

    synthetic = fpar(stack, "dataset", "show", "synthetic").stdout  # hand-copied, with its report by severity
    assert synthetic.index("warnings (") < synthetic.index("info ("), synthetic
    assert "first-map-missing (" in synthetic and "hidden-ignored (" in synthetic

    assert fpar(stack, "dataset", "delete", "cli_kitchen").returncode == 0
    gone = fpar(stack, "dataset", "show", "cli_kitchen")
    assert gone.returncode == 1 and "(404)" in gone.stderr and "cli_kitchen" in gone.stderr, gone.stderr


def test_dataset_ingest_uploads_an_archive_and_prints_bad_input(stack, client, tmp_path):
    source = write_incoming(stack, "cli_upload", {"S3": ["lower_ball"]})
    archive = tmp_path / "recordings.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in (stack.data_dir / source).iterdir():
            z.write(f, f.name)
    r = fpar(stack, "dataset", "ingest", "cli_upload", "--archive", str(archive), "--shorter-side", "32", "--no-maps",
             "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    job = wait_for(client, json.loads(r.stdout)["id"], timeout_s=60)
    assert job["status"] == "succeeded", job
    made = client.get("/datasets/cli_upload").json()
    assert made["videos"] == 1 and not made["maps"] and made["manifest"]["uploaded"]

    taken = fpar(stack, "dataset", "ingest", "cli_upload", "--source", source)
    assert taken.returncode == 1 and "(409)" in taken.stderr and "cli_upload" in taken.stderr, taken.stderr
    missing = fpar(stack, "dataset", "ingest", "cli_nothing", "--source", "incoming/nothing-here")
    assert missing.returncode == 1 and "(404)" in missing.stderr and "source" in missing.stderr, missing.stderr
    both = fpar(stack, "dataset", "ingest", "cli_both")
    assert both.returncode == 2 and "--archive" in both.stderr
    assert fpar(stack, "dataset", "delete", "cli_upload").returncode == 0


def test_timeline_uploads_watches_and_saves_the_csv_and_picture(stack, client, trained, tmp_path):
    rec = write_recording(stack.data_dir / "recordings" / "cli.mp4",
                          [("S2", "open_box", 0), ("S2", "lift_cup", 0), ("S2", "close_box", 0)], fps=12)
    model_id = trained["result"]["model"]
    saved_csv, saved_png = tmp_path / "out.csv", tmp_path / "out.png"
    r = fpar(stack, "timeline", str(rec.path), "--model", model_id, "--watch", "--csv", str(saved_csv),
             "--png", str(saved_png), "--user", "S2", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    job_id = r.stdout.split("queued ")[1].split(":")[0]
    job = client.get(f"/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["request"]["uploaded"], job
    windows = job["progress"]["windows"]
    assert f"{windows} windows over 0:" in r.stdout.splitlines()[0] and "cli.mp4" in r.stdout.splitlines()[0]
    progress = [line.split()[1] for line in r.stdout.splitlines() if line.startswith(f"{job_id} ")]
    assert progress and progress[-1] == f"{windows}/{windows}", r.stdout  # piped: a line per change of the bar
    assert progress == sorted(set(progress), key=lambda p: int(p.split("/")[0])), r.stdout
    rows = [[c.strip() for c in line.strip("│").split("│")] for line in r.stdout.splitlines()
            if line.startswith("│")]
    segments = job["result"]["segments"]
    assert [row[2] for row in rows] == [s["label"] for s in segments], r.stdout  # one row per segment, in order
    first = segments[0]
    assert rows[0][:2] == [f"0:{first['start']:04.1f}", f"0:{first['end']:04.1f}"], r.stdout  # m:ss.s
    with open(saved_csv, newline="") as f:
        lines = list(csv.reader(f))
    assert lines[0] == ["video", "label", "start", "end", "user"]
    assert [row[1] for row in lines[1:]] == [s["label"] for s in segments] and {row[4] for row in lines[1:]} == {"S2"}
    assert Image.open(saved_png).size[0] >= 800

    r = fpar(stack, "timeline", "recordings/cli.mp4", "--source", "--model", model_id, "--stride", "0.5", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    queued = json.loads(r.stdout)
    assert queued["kind"] == "timeline" and queued["request"]["video"] == "recordings/cli.mp4"
    assert queued["request"]["options"]["stride"] == 0.5 and not queued["request"]["uploaded"]
    assert wait_for(client, queued["id"], timeout_s=60)["status"] == "succeeded"
    assert client.get(f"/jobs/{queued['id']}/video").status_code == 200  # a source file: the dashboard can play it


def test_a_bad_timeline_prints_the_problem(stack, trained, tmp_path):
    model_id = trained["result"]["model"]
    r = fpar(stack, "timeline", "recordings/cli.mp4", "--source", "--model", model_id, "--stride", "0")
    assert r.returncode == 1 and "(422)" in r.stderr and "stride" in r.stderr, r.stderr
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video, only words")
    r = fpar(stack, "timeline", str(notes), "--model", model_id, "--watch")
    assert r.returncode == 1 and "(422)" in r.stderr and "video: " in r.stderr and "notes.mp4" in r.stderr, r.stderr
    r = fpar(stack, "timeline", "recordings/nothing.mp4", "--source")
    assert r.returncode == 1 and "(404)" in r.stderr and "source" in r.stderr, r.stderr
    r = fpar(stack, "timeline", str(tmp_path / "missing.mp4"))
    assert r.returncode == 2 and "--source" in r.stderr, r.stderr  # not a file here: said before anything is sent
