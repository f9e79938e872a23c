"""The dashboard in a real browser (Debian's chromium driven by Playwright, no network
beyond the stack): train on the synthetic set from the form and watch the job page reach
`succeeded` with its curves drawn live; an experiment from its form, with its shared stage
and a run that starts from it; predict on the predict page comparing two models;
the models page; the datasets page (a dataset's report and previews, an ingest from the
form followed live, a delete); a timeline from its form, its strip and segments playing the
video where clicked; and /docs rendered from the package's own assets.
Screenshots are saved in FPAR_SCREENSHOTS (default: the test's temporary folder)."""
import json
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest

from fpar_models.data.recordings import write_recording
from launcher import free_port

from stack_helpers import TINY, tiny_train, wait_for, write_incoming

CHROMIUM = "/usr/bin/chromium"
DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"


def chromium() -> str:
    """Debian's chromium, installed on first use (Playwright's own download is not used)."""
    if not Path(CHROMIUM).exists() and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run("apt-get update -qq && apt-get install -y -qq chromium", shell=True, timeout=600,
                       capture_output=True)
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed and could not be (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def page(browser, stack, tmp_path):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=stack.url)
    here = urlparse(stack.url).netloc
    blocked = []

    def offline(route):  # nothing but the stack: a CDN asset would fail the page
        if urlparse(route.request.url).netloc == here or route.request.url.startswith("data:"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", offline)
    p = context.new_page()
    errors = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    yield p
    context.close()
    assert not blocked, f"the page asked the network for {blocked}"
    assert not errors, f"JavaScript errors: {errors}"


def shot(page, name: str, tmp_path) -> Path:
    folder = Path(os.environ.get("FPAR_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_train_from_the_form_and_watch_the_job_live(page, client, tmp_path):
    page.goto("/#/train")
    page.select_option("#preset", "egornn-attention")
    page.fill("#dataset", "synthetic")
    overrides = {k: v for k, v in TINY.items() if k != "dataset"} | {"stages": [{"epochs": 3}, {"epochs": 2}]}
    page.fill("#overrides", json.dumps(overrides))
    page.click("button[type=submit]")
    page.wait_for_url("**/#/jobs/tr_*")
    job_id = page.url.rsplit("/", 1)[1]
    page.wait_for_selector("#status [data-status=running]", timeout=120_000)  # seen live, before the end
    page.wait_for_selector("#status [data-status=succeeded]", timeout=300_000)
    page.wait_for_selector("#model-link")
    job = client.get(f"/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and len(job["metrics"]) == 5
    assert page.locator("#epochs tr").count() == 1 + 5  # a row per epoch, from the event stream
    # uPlot draws on a canvas; the chart says how many points it was given to draw
    assert page.locator("#acc canvas").count() == 1
    assert page.locator("#acc").get_attribute("data-points") == str(2 * 5)  # train and validation accuracy per epoch
    assert page.locator("#model-link").inner_text() == job["result"]["model"]
    shot(page, "job", tmp_path)

    page.goto("/#/jobs")
    page.wait_for_selector(f"#jobs tr[data-id='{job_id}'] [data-status=succeeded]")


def test_an_experiment_from_the_form_shows_its_shared_stage_and_each_run(page, client, tmp_path):
    page.goto("/#/experiments")
    body = {"name": "dashboard: stage-2 lr", "base": tiny_train(), "grid": {"stages.1.lr": [1e-4, 1e-3]}}
    page.fill("#body", json.dumps(body))
    page.click("button[type=submit]")
    page.wait_for_url("**/#/experiments/ex_*")
    exp_id = page.url.rsplit("/", 1)[1]
    page.wait_for_selector("#head [data-status=succeeded]", timeout=300_000)
    page.wait_for_selector("#plot img")
    exp = client.get(f"/experiments/{exp_id}").json()
    shared, first = exp["shared"][0], exp["jobs"][0]
    assert page.locator("#runs-table tr").count() == 1 + 1 + 2  # the header, the shared stage 1, two runs
    assert page.locator("#runs-table tr.shared").inner_text().split("\t")[:2] == [shared["id"], "shared stage 1 of 2 jobs"]
    assert page.locator("#cost").inner_text() == "3 trained of 3 (4 with each run alone)"
    shot(page, "experiment", tmp_path)

    page.click(f"#runs-table a[href='#/jobs/{first['id']}']")
    page.wait_for_selector("#epochs tr.inherited")
    model = client.get(f"/jobs/{shared['id']}").json()["result"]["model"]
    assert page.locator("#init-from").inner_text() == f"stage 1 of {model} · after job {shared['id']}"
    assert page.locator("#epochs tr.inherited").count() == 1 and page.locator("#epochs tr").count() == 1 + 2
    assert model in page.locator("#epochs tr.inherited").inner_text()
    shot(page, "experiment-run", tmp_path)


def test_a_search_shows_its_trials_as_they_are_asked(page, client, tmp_path):
    base = {**TINY, "preset": "egornn-attention", "image_size": 32, "stages": [{"epochs": 3}, None]}
    body = {"name": "dashboard: a search", "base": base,
            "search": {"trials": 3, "parallel": 1, "space": {"stages.0.lr": {"low": 1e-6, "high": 1e-2, "log": True}},
                       "startup_trials": 1}}
    exp = client.post("/experiments", json=body).json()
    page.goto(f"/#/experiments/{exp['id']}")
    page.wait_for_selector("#head [data-status=succeeded]", timeout=300_000)
    page.wait_for_selector("#plot img")
    done = client.get(f"/experiments/{exp['id']}").json()
    assert page.locator("#search").inner_text() == "tpe, 3 of 3 trials asked, 1 at a time, median pruner"
    trained = done["cost"]["trained_epochs"]
    assert page.locator("#cost").inner_text() == f"{trained} trained of at most 9 (pruning stops trials early)"
    assert page.locator("#exp-table th").first.inner_text() == "stages.0.lr"
    assert page.locator("#runs-table tr").count() == 1 + 3
    assert page.locator("#runs-table .reason").count() == sum(j["reason"] == "pruned" for j in done["jobs"])
    shot(page, "experiment-search", tmp_path)


def test_a_bad_config_is_shown_plainly(page):
    page.goto("/#/train")
    page.fill("#dataset", "synthetic")
    page.fill("#overrides", '{"frames": 0}')
    page.click("button[type=submit]")
    error = page.wait_for_selector(".error")
    assert "frames" in error.inner_text() and "Unprocessable" in error.inner_text()


def test_predict_compares_two_models_on_the_same_clip(page, client, stack, trained, tmp_path):
    second = wait_for(client, client.post("/train", json=tiny_train(epochs=(1, 1), seed=7)).json()["id"])
    ids = [trained["result"]["model"], second["result"]["model"]]
    frames = sorted((stack.data_dir / "synthetic/processed_frames2/S2/lift_cup/1/rgb").glob("*.png"))
    page.goto("/#/predict")
    page.wait_for_selector(f"#models option[value='{ids[1]}']")
    page.set_input_files("#files", [str(f) for f in frames])
    page.select_option("#models", ids)
    page.click("#run")
    for model_id in ids:
        card = page.wait_for_selector(f".answer[data-model='{model_id}'] .topk", timeout=120_000)
        want = client.post("/predict", files=[("frames", (f.name, f.read_bytes())) for f in frames],
                           data={"model": model_id, "wait": "60"}).json()["result"]["top_k"]
        shown = [a.inner_text() for a in card.query_selector_all(".action")]
        assert shown == [row["label"] for row in want], (shown, want)
        frames_seen = client.get(f"/models/{model_id}").json()["frames"]
        assert len(page.query_selector_all(f".answer[data-model='{model_id}'] .cams img")) == frames_seen
    shot(page, "predict", tmp_path)


def test_the_models_page_and_a_model_with_its_pictures(page, trained, tmp_path):
    model_id = trained["result"]["model"]
    page.goto("/#/models")
    page.wait_for_selector(f"#models a[href='#/models/{model_id}']").click()
    img = page.wait_for_selector("#confusion-img", timeout=120_000)
    page.wait_for_function("document.querySelector('#confusion-img').naturalWidth > 300")
    assert img.get_attribute("src").startswith("blob:")
    shot(page, "model", tmp_path)


def test_the_api_docs_render_without_a_network(page):
    page.goto("/docs")
    title = page.wait_for_selector(".swagger-ui .info .title", timeout=60_000)
    assert "fpar-serve" in title.inner_text()
    assert page.locator(".opblock").count() > 20  # every operation listed
    page.goto("/redoc")
    page.wait_for_selector("text=Open Inference Protocol", timeout=60_000)


def test_with_api_keys_the_key_typed_in_is_sent(browser, stack, trained):
    url = stack.add_gateway("gateway-dashboard-keys", free_port(), {"FPAR_API_KEYS": "dash-key-51b2"})
    context = browser.new_context(base_url=url)
    try:
        p = context.new_page()
        p.goto("/#/models")
        error = p.wait_for_selector(".error")
        assert "Unauthorized" in error.inner_text()  # said plainly, not a blank page
        p.fill("#api-key", "dash-key-51b2")
        p.press("#api-key", "Enter")
        p.wait_for_selector(f"#models a[href='#/models/{trained['result']['model']}']")
        p.reload()  # kept in the browser
        p.wait_for_selector(f"#models a[href='#/models/{trained['result']['model']}']")
    finally:
        context.close()
        stack.remove("gateway-dashboard-keys")


# a function, not an expression: the page's CSP forbids the eval() an expression needs
PREVIEW_DRAWN = """(before) => { const img = document.querySelector('#preview-img');
  return !!img && img.complete && img.naturalWidth > 0 && img.getAttribute('src') !== before; }"""


def test_the_datasets_page_lists_reports_and_previews(page, client, tmp_path):
    page.goto("/#/datasets")
    row = page.wait_for_selector("#datasets tr[data-name='synthetic']")
    assert row.query_selector("[data-status=ready]") and "copied" in row.inner_text()
    row.query_selector("a[href='#/datasets/synthetic']").click()
    page.wait_for_selector("#report")
    detail = client.get("/datasets/synthetic").json()
    order = {"error": 0, "warning": 1, "info": 2}
    want = sorted([(f["severity"], f["path"]) for f in detail["report"]], key=lambda f: order[f[0]])
    rows = "#report tr[data-severity]"
    assert [(r.get_attribute("data-severity"), r.query_selector("code").text_content())
            for r in page.query_selector_all(rows)] == want  # errors first, then warnings, then info
    assert page.locator(f"{rows}:visible").count() == 3 + 3  # three of each kind, the rest behind a toggle
    page.click("#report [data-more='warning-first-map-missing']")
    page.click("#report [data-more='info-hidden-ignored']")
    assert page.locator(f"{rows}:visible").count() == len(want)
    assert page.locator("#counts tr").count() == 1 + len(detail["classes"])
    page.wait_for_function(PREVIEW_DRAWN, arg="", timeout=60_000)
    first = page.get_attribute("#preview-img", "src")
    page.select_option("#video", detail["entries"][-1])  # the picker draws another video
    page.wait_for_function(PREVIEW_DRAWN, arg=first, timeout=60_000)
    shot(page, "dataset", tmp_path)


def test_a_dataset_ingested_from_the_form_runs_live_and_ends_ready(page, client, stack, tmp_path):
    source = write_incoming(stack, "page_kitchen", {"S1": ["lift_ball", "close_box"], "S2": ["lift_ball", "close_box"]})
    page.goto("/#/datasets")
    page.wait_for_selector("#datasets")
    page.fill("#ds-name", "page_kitchen")
    page.fill("#ds-source", source)
    page.select_option("#ds-flow", "farneback")
    page.fill("#ds-size", "32")
    # every status the job's card shows, however briefly
    page.evaluate("""() => { window.seen = []; new MutationObserver(() => document.querySelectorAll(
        '#ingest-status [data-status]').forEach((b) => window.seen.push(b.dataset.status)))
        .observe(document.querySelector('#ingest-job'), {childList: true, subtree: true}); }""")
    page.click("#ds-submit")
    page.wait_for_selector("#ingest-status [data-status=succeeded]", timeout=90_000)
    assert "4/4 videos" in page.inner_text("#ingest-progress")  # from the job's progress events
    assert "running" in page.evaluate("() => window.seen")
    page.wait_for_selector("#datasets tr[data-name='page_kitchen'] [data-status=ready]")
    made = client.get("/datasets/page_kitchen").json()
    options = made["manifest"]["options"]
    assert options["flow"] == "farneback" and options["shorter_side"] == 32 and made["videos"] == 4
    shot(page, "datasets", tmp_path)

    page.click("#ingest-dataset")
    page.wait_for_function(PREVIEW_DRAWN, arg="", timeout=60_000)
    assert page.inner_text("#manifest").count("farneback") == 1
    shot(page, "dataset-ingested", tmp_path)
    page.on("dialog", lambda d: d.accept())
    page.click("#delete")
    page.wait_for_url("**/#/datasets")
    page.wait_for_selector("#datasets")
    assert page.locator("#datasets tr[data-name='page_kitchen']").count() == 0
    assert client.get("/datasets/page_kitchen").status_code == 404


def test_a_bad_dataset_ingest_is_shown_plainly(page):
    page.goto("/#/datasets")
    page.fill("#ds-name", "page_bad")
    page.fill("#ds-source", "incoming/nothing-here")
    page.click("#ds-submit")
    error = page.wait_for_selector("#ingest .error")
    assert "Not Found" in error.inner_text() and "incoming/nothing-here" in error.inner_text(), error.inner_text()


def recording(stack, name: str) -> Path:
    clips = [("S2", "open_box", 0), ("S2", "lift_cup", 0), ("S2", "close_box", 0)]
    return write_recording(stack.data_dir / "recordings" / name, clips, fps=12).path


def current_time(page) -> float:
    return page.evaluate("() => document.querySelector('#tl-video').currentTime")


def seek_away(page, t: float) -> None:
    page.evaluate("(t) => { const v = document.querySelector('#tl-video'); v.pause(); v.currentTime = t; }", t)
    page.wait_for_function("(t) => Math.abs(document.querySelector('#tl-video').currentTime - t) < 0.01", arg=t)


@pytest.fixture(scope="module")
def learned(client) -> str:
    """A model trained a little longer than `trained` (9 s): a few segments to click on, not one."""
    job = wait_for(client, client.post("/train", json={**tiny_train(epochs=(8, 1)), "image_size": 32,
                                                       "seed": 3}).json()["id"])
    assert job["status"] == "succeeded", job
    return job["result"]["model"]


def test_a_timeline_from_the_form_plays_each_segment_where_clicked(page, client, stack, learned, tmp_path):
    recording(stack, "page.mp4")
    model_id = learned
    page.goto("/#/timeline")
    page.wait_for_selector(f"#tl-model option[value='{model_id}']", state="attached")
    page.select_option("#tl-model", model_id)
    page.fill("#tl-source", "recordings/page.mp4")
    page.fill("#tl-stride", "0.25")
    page.evaluate("""() => { window.seen = []; new MutationObserver(() => document.querySelectorAll(
        '#status [data-status]').forEach((b) => window.seen.push(b.dataset.status)))
        .observe(document.querySelector('#view'), {childList: true, subtree: true}); }""")
    page.click("#tl-submit")
    page.wait_for_url("**/#/jobs/ti_*")
    job_id = page.url.rsplit("/", 1)[1]
    page.wait_for_selector("#status [data-status=succeeded]", timeout=60_000)
    page.wait_for_selector("#segments tr[data-start]")
    job = client.get(f"/jobs/{job_id}").json()
    segments, windows = job["result"]["segments"], job["result"]["windows"]
    assert job["request"]["options"]["stride"] == 0.25 and job["request"]["video"] == "recordings/page.mp4"
    assert "running" in page.evaluate("() => window.seen"), "followed live, not only read at the end"
    assert f"{len(windows)}/{len(windows)} windows" in page.inner_text("#progress")
    page.wait_for_selector(f"#strip-box[data-windows='{len(windows)}']")  # the windows lane, every window drawn
    assert page.locator("#lane-segments .seg").count() == page.locator("#segments tr[data-start]").count() == len(segments)
    assert {s["label"] for s in segments} <= set(page.inner_text("#legend").split())

    page.wait_for_selector("#tl-video[data-state=playable]", timeout=20_000)
    duration = job["result"]["duration_s"]
    target = max(segments, key=lambda s: s["start"])
    seek_away(page, 0 if target["start"] >= 1 else duration - 0.3)
    page.locator("#lane-segments .seg").nth(segments.index(target)).click()  # the strip: the video from its start
    assert abs(current_time(page) - target["start"]) < 0.3, (current_time(page), target)
    page.wait_for_function("() => !document.querySelector('#tl-video').paused")
    seek_away(page, duration - 0.3)
    page.locator("#segments tr[data-start]").first.click()  # a row of the table does the same
    assert abs(current_time(page) - segments[0]["start"]) < 0.3, (current_time(page), segments[0])
    seek_away(page, 0)
    lane = page.locator("#lane-windows")
    box = lane.bounding_box()
    lane.click(position={"x": 0.75 * box["width"], "y": box["height"] / 2})  # the window under the pointer
    nearest = min(windows, key=lambda w: abs((w["start"] + w["end"]) / 2 - 0.75 * duration))
    assert abs(current_time(page) - nearest["start"]) < 0.3, (current_time(page), nearest)
    page.evaluate("() => document.querySelector('#tl-video').pause()")
    marker = float(page.get_attribute("#marker", "data-time"))
    assert abs(marker - current_time(page)) < 0.3  # the marker follows the video
    page.wait_for_selector("#segments tr.current")

    with page.expect_download() as download:
        page.click("#csv-link")
    assert Path(download.value.path()).read_text().splitlines()[0] == "video,label,start,end,user"
    page.click("#picture-box summary")
    page.wait_for_function("() => document.querySelector('#timeline-img')?.naturalWidth >= 800")
    page.click("#picture-box summary")  # closed again for the screenshot
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS_IMG / "dashboard-timeline.png"), full_page=True)


def test_an_uploaded_timeline_asks_for_a_copy_to_play(page, client, stack, trained, tmp_path):
    video = recording(stack, "page_upload.mp4")
    page.goto("/#/timeline")
    page.wait_for_selector(f"#tl-model option[value='{trained['result']['model']}']", state="attached")
    page.set_input_files("#tl-file", str(video))
    assert "page_upload.mp4" in page.inner_text("#chosen")
    page.click("#tl-submit")
    page.wait_for_url("**/#/jobs/ti_*")
    page.wait_for_selector("#status [data-status=succeeded]", timeout=60_000)
    picker = page.wait_for_selector("#video-picker")
    assert "Pick your copy of page_upload.mp4" in picker.inner_text() and "uploaded" in picker.inner_text()
    assert client.get(f"/jobs/{page.url.rsplit('/', 1)[1]}/video").status_code == 404
    page.set_input_files("#tl-copy", str(video))
    state = page.wait_for_selector("#tl-video[data-state=playable], #tl-video[data-state=blocked]", state="attached")
    if state.get_attribute("data-state") == "blocked":  # the gateway's CSP has no media-src blob:
        assert "media-src" in page.inner_text("#video-error")
    shot(page, "timeline-upload", tmp_path)


def test_a_bad_timeline_is_shown_plainly(page, trained):
    page.goto("/#/timeline")
    page.wait_for_selector(f"#tl-model option[value='{trained['result']['model']}']", state="attached")
    page.click("#tl-submit")
    assert "Choose a video" in page.wait_for_selector("#timeline-form .error").inner_text()  # nothing sent
    page.fill("#tl-source", "recordings/nothing-here.mp4")
    page.click("#tl-submit")
    error = page.wait_for_selector("#timeline-form .error")
    assert "Not Found" in error.inner_text() and "source" in error.inner_text(), error.inner_text()
    page.fill("#tl-source", "recordings/page.mp4")
    page.fill("#tl-stride", "0")
    page.click("#tl-submit")
    page.wait_for_function("() => document.querySelector('#timeline-form .error')?.innerText.includes('stride')")
    assert "Unprocessable" in page.inner_text("#timeline-form .error")


def test_a_timeline_behind_api_keys_fetches_its_video_with_the_key(browser, stack, client, trained, tmp_path):
    recording(stack, "page_keys.mp4")
    job_id = client.post("/timelines", json={"source": "recordings/page_keys.mp4"}).json()["id"]
    wait_for(client, job_id, timeout_s=60)
    url = stack.add_gateway("gateway-timeline-keys", free_port(), {"FPAR_API_KEYS": "tl-key-7c3d"})
    context = browser.new_context(base_url=url)
    try:
        p = context.new_page()
        p.goto("/#/jobs")
        p.fill("#api-key", "tl-key-7c3d")
        p.press("#api-key", "Enter")
        p.goto(f"/#/jobs/{job_id}")
        p.wait_for_selector("#segments tr[data-start]")
        p.click("#tl-fetch", timeout=20_000)  # a <video> sends no key: the page fetches the video with it
        state = p.wait_for_selector("#tl-video[data-state=playable], #tl-video[data-state=blocked]", state="attached")
        if state.get_attribute("data-state") == "blocked":
            assert "media-src" in p.inner_text("#video-error")
        shot(p, "timeline-keys", tmp_path)
    finally:
        context.close()
        stack.remove("gateway-timeline-keys")
