"""The layout's promise at run time: a serving process loads no training, evaluation or corpus-builder code.
pyproject's import contracts (`lint-imports`, run by `make test`) check every static import; this checks what a
server that has started, warmed up and answered an upload with hotwords, written (punctuated), has loaded, dynamic
imports included."""

import subprocess
import sys

from helpers import ROOT

NOT_SERVING = ("model.training", "model.evaluation", "model.corpus")
SERVE_AND_LIST_MODULES = """
import sys

from fastapi.testclient import TestClient

import service.__main__  # noqa: F401  (python -m service, the openasr command)
from service.app import create_app
from service.settings import Settings

with TestClient(create_app(Settings())) as client, open("model/samples/zh-CN_1.wav", "rb") as audio:
    response = client.post("/transcribe", files={"file": audio},
                           data={"locale": "zh", "hotwords": "北京", "format": "written"})
    assert response.status_code == 200, response.text
print("\\n".join(sorted(sys.modules)))
"""


def test_a_serving_process_loads_no_training_evaluation_or_corpus_code():
    result = subprocess.run([sys.executable, "-c", SERVE_AND_LIST_MODULES], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.split()
    assert "model.recognition.recognizer" in loaded and "model.decoding.syllables" in loaded  # it served, hotwords too
    assert "model.text.punctuation" in loaded  # and punctuated
    assert [m for m in loaded if m.startswith(NOT_SERVING)] == []
