"""The dashboard in a real browser (Debian's chromium driven by Playwright, no network
beyond the stack): train on the synthetic set from the form and watch the job page reach
`succeeded` with its curves drawn live; predict on the predict page comparing two models;
the models page; and /docs rendered from the package's own assets. Screenshots are saved
in FPAR_SCREENSHOTS (default: the test's temporary folder)."""
import json
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest

from launcher import free_port

from stack_helpers import TINY, tiny_train, wait_for

CHROMIUM = "/usr/bin/chromium"


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
