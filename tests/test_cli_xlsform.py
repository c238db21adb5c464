"""`main.py survey import` and `survey validate` with XLSForm workbooks (real subprocesses)."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import SHIPPED_SURVEYS_DIR
from surveys.definition import load_survey_file, survey_to_dict
from tests.surveys.xlsform_books import basic_settings, workbook, workbook_from_survey
from tests.test_cli import run_cli

HEADER = ["type", "name", "label", "be_safe::report_label", "relevant"]


@pytest.fixture
def bullying_xlsx(tmp_path: Path) -> Path:
    survey = load_survey_file(SHIPPED_SURVEYS_DIR / "bullying.yaml").survey
    assert survey is not None
    path = tmp_path / "bullying.xlsx"
    path.write_bytes(workbook_from_survey(survey))
    return path


def test_import_writes_yaml_that_the_loader_accepts(bullying_xlsx: Path, tmp_path: Path) -> None:
    output = tmp_path / "out" / "bullying.yaml"
    output.parent.mkdir()
    result = run_cli("survey", "import", str(bullying_xlsx), "--output", str(output))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "imported bullying version 1" in result.stdout
    loaded = load_survey_file(output)
    assert loaded.problems == []
    expected = load_survey_file(SHIPPED_SURVEYS_DIR / "bullying.yaml").survey
    assert loaded.survey is not None and expected is not None
    assert survey_to_dict(loaded.survey) == survey_to_dict(expected)
    checked = run_cli("survey", "validate", str(output), str(bullying_xlsx))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(": ok: bullying version 1") == 2


def test_import_without_output_prints_the_yaml(bullying_xlsx: Path) -> None:
    result = run_cli("survey", "import", str(bullying_xlsx))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# Be-Safe survey imported from bullying.xlsx")
    assert "\nid: bullying\n" in result.stdout


def test_import_never_overwrites_a_file_unless_asked(bullying_xlsx: Path, tmp_path: Path) -> None:
    output = tmp_path / "mine.yaml"
    output.write_text("my own work\n")
    refused = run_cli("survey", "import", str(bullying_xlsx), "--output", str(output))
    assert refused.returncode == 2
    assert "already exists" in refused.stderr
    assert output.read_text() == "my own work\n"
    forced = run_cli("survey", "import", str(bullying_xlsx), "--output", str(output), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "id: bullying" in output.read_text()


BAD = {
    "not a zip": (b"type,name\n", "bad.xlsx: the workbook: this is not an .xlsx workbook"),
    "empty workbook": (workbook(None), "bad.xlsx: the workbook: the workbook is empty"),
    "no survey sheet": (
        workbook(None, [["list_name", "name", "label"]], basic_settings()),
        "bad.xlsx: the workbook: the workbook has no sheet called 'survey'",
    ),
    "list without choices": (
        workbook([HEADER, ["select_one nope", "q", "Q?", "Q"]], None, basic_settings()),
        "bad.xlsx: survey sheet, row 2: question 'q': list 'nope' has no choices",
    ),
    "duplicate names": (
        workbook(
            [HEADER, ["text", "q", "Q?", "Q"], ["text", "q", "R?", "R"]], None, basic_settings()
        ),
        "bad.xlsx: survey sheet, row 3: question 'q': duplicate question id 'q'",
    ),
    "unknown type": (
        workbook([HEADER, ["txet", "q", "Q?", "Q"]], None, basic_settings()),
        "bad.xlsx: survey sheet, row 2: question 'q': unknown type 'txet'",
    ),
    "bad relevant": (
        workbook(
            [HEADER, ["text", "a", "A?", "A"], ["text", "q", "Q?", "Q", "${a} ~ 2"]],
            None,
            basic_settings(),
        ),
        "bad.xlsx: survey sheet, row 3: question 'q': relevant \"${a} ~ 2\" cannot be used",
    ),
}


@pytest.mark.parametrize("name", BAD)
def test_a_bad_workbook_exits_2_with_its_row_and_no_traceback(name: str, tmp_path: Path) -> None:
    data, expected = BAD[name]
    path = tmp_path / "bad.xlsx"
    path.write_bytes(data)
    output = tmp_path / "bad.yaml"
    result = run_cli("survey", "import", str(path), "--output", str(output))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert expected in result.stderr.replace(str(tmp_path) + "/", "")
    assert not output.exists()
    checked = run_cli("survey", "validate", str(path))
    assert checked.returncode == 1
    assert "Traceback" not in checked.stderr
    assert expected in checked.stdout.replace(str(tmp_path) + "/", "")


def test_import_of_a_missing_file(tmp_path: Path) -> None:
    result = run_cli("survey", "import", str(tmp_path / "nowhere.xlsx"))
    assert result.returncode == 2
    assert "cannot read the file" in result.stderr
    assert "Traceback" not in result.stderr
