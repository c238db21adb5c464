"""Golden transcripts: tests/data/transcripts/*.json replayed through the engine.

Each file holds {"survey": <factory name>, "events": [...], "expected_outputs": [...],
"expected_effects": [...]}: one list of outputs and one list of effects per event. The
state is round-tripped through JSON after every step (see `harness.Conversation`).

To regenerate after a deliberate change of wording or behaviour, run
    BESAFE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/surveys_engine/test_transcripts.py
and review the diff of the JSON files before committing them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .harness import Conversation, effect_to_json, event_from_json, say_to_json

TRANSCRIPTS = Path(__file__).resolve().parents[1] / "data" / "transcripts"
UPDATE = os.environ.get("BESAFE_UPDATE_GOLDEN") == "1"


def transcript_files() -> list[Path]:
    return sorted(TRANSCRIPTS.glob("*.json"))


def test_there_are_enough_transcripts() -> None:
    names = {path.stem for path in transcript_files()}
    assert len(names) >= 5
    assert {"happy_path_tapping", "happy_path_typing", "back_branch_change"} <= names
    assert {"stop_resume", "forget"} <= names


def replay(data: dict) -> tuple[list[list[dict]], list[list[dict]]]:
    c = Conversation.of(data["survey"], *data.get("also_open", []))
    outputs: list[list[dict]] = []
    effects: list[list[dict]] = []
    for event in data["events"]:
        step = c.send(event_from_json(event))
        outputs.append([say_to_json(say) for say in step.outputs])
        effects.append([effect_to_json(effect) for effect in step.effects])
    return outputs, effects


@pytest.mark.parametrize("path", transcript_files(), ids=lambda path: path.stem)
def test_transcript(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    outputs, effects = replay(data)
    if UPDATE:
        data["expected_outputs"] = outputs
        data["expected_effects"] = effects
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return
    assert len(data["expected_outputs"]) == len(data["events"]), "regenerate the transcript"
    for number, event in enumerate(data["events"]):
        where = f"{path.name}, event {number}: {event}"
        assert outputs[number] == data["expected_outputs"][number], where
        assert effects[number] == data["expected_effects"][number], where
