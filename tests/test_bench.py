"""The LoCoMo benchmark over a tiny synthetic LoCoMo-format file, run in-process on real stores, and
its helpers (evidence-id repair, percentiles, turn texts)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from memos_mcp.bench.locomo import CATEGORIES, KS, evidence_ids, percentile, run_locomo, turn_text, turns_of
from memos_mcp.config import ALIASES
from tests.conftest import settings_for
from tests.test_cli import memos

pytestmark = pytest.mark.usefixtures("clean_environment")


def turn(dia_id: str, speaker: str, text: str, **extra: str) -> dict[str, str]:
    return {"speaker": speaker, "dia_id": dia_id, "text": text, **extra}


SAMPLES: list[dict[str, Any]] = [
    {
        "sample_id": "conv-a",
        "conversation": {
            "speaker_a": "Ann", "speaker_b": "Bo",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                turn("D1:1", "Ann", "Hey Bo, long time no see! How have you been lately?"),
                turn("D1:2", "Bo", "Pretty good, work at the bakery keeps me busy every morning."),
                turn("D1:3", "Ann", "I finally adopted a wire-haired dachshund puppy called Pickles from the shelter."),
                turn("D1:4", "Bo", "Congratulations! Dogs are such wonderful company."),
                turn("D1:5", "Ann", "Look at what I built this weekend!",
                     blip_caption="a photo of a wooden birdhouse painted bright turquoise"),
                turn("D1:6", "Bo", "That looks amazing, you are really handy with tools."),
                turn("D1:7", "Ann", "Thanks, my grandfather taught me woodworking when I was little."),
            ],
            "session_2_date_time": "10:15 am on 20 May, 2023",
            "session_2": [
                turn("D2:1", "Bo", "How is the little puppy doing these days?"),
                turn("D2:2", "Ann", "Pickles graduated from obedience school last Tuesday, so proud of him."),
                turn("D2:3", "Bo", "That is great news, training takes a lot of patience."),
                turn("D2:4", "Ann", "I am also planning a kayaking trip to Lake Wanaka in New Zealand."),
                turn("D2:5", "Bo", "Wow, I have always wanted to visit the southern alps."),
                turn("D2:6", "Ann", "You should come along, we could rent a campervan."),
            ],
        },
        "qa": [
            # single-hop, answerable: its evidence turn is the only one with these rare words
            {"question": "What breed is the wire-haired puppy Pickles that Ann adopted from the shelter?",
             "answer": "a dachshund", "evidence": ["D1:3"], "category": 4},
            # multi-hop, with the malformed evidence form of the original data
            {"question": "Where did the puppy Ann adopted go to school?", "answer": "obedience school",
             "evidence": ["D1:3; D2:1"], "category": 1},
            # temporal, with an evidence id that does not exist (dropped)
            {"question": "When did Pickles graduate from obedience school?", "answer": "the Tuesday before 20 May",
             "evidence": ["D2:2", "D9:9"], "category": 2},
            # open-domain: the only category-3 question, about the photo's caption
            {"question": "What colour is the birdhouse Ann painted turquoise?", "answer": "turquoise",
             "evidence": ["D1:5"], "category": 3},
            # adversarial: skipped
            {"question": "What did Bo say about Ann's kayak?", "adversarial_answer": "nothing",
             "evidence": ["D2:4"], "category": 5},
            # evidence only of ids that do not exist: skipped
            {"question": "Who is Ann's neighbour?", "answer": "unknown", "evidence": ["D7:7"], "category": 4},
        ],
    },
    {
        "sample_id": "conv-b",
        "conversation": {
            "speaker_a": "Cy", "speaker_b": "Di",
            "session_1_date_time": "7:30 pm on 1 June, 2023",
            "session_1": [
                turn("D1:1", "Cy", "Guess what, I started learning the cello two weeks ago."),
                turn("D1:2", "Di", "No way! Is it hard to learn as an adult?"),
                turn("D1:3", "Cy", "The bowing is tricky but my teacher Margarethe is very patient."),
                turn("D1:4", "Di", "I joined a climbing gym near the harbour instead."),
                turn("D1:5", "Cy", "Climbing sounds fun, do you go bouldering?"),
                turn("D1:6", "Di", "Mostly bouldering, three evenings a week."),
            ],
            "session_2_date_time": "9:00 am on 15 June, 2023",
            "session_2": [
                turn("D2:1", "Di", "I sprained my wrist at the climbing gym on Saturday."),
                turn("D2:2", "Cy", "Oh no, I hope it heals quickly."),
                turn("D2:3", "Di", "The doctor said six weeks without climbing."),
                turn("D2:4", "Cy", "At least you can come to my first cello recital in July."),
                turn("D2:5", "Di", "I would love that, send me the date."),
                turn("D2:6", "Cy", "It will be at the old chapel on Fern Street."),
                turn("D2:7", "Di", "Perfect, I will bring flowers."),
            ],
        },
        "qa": [
            {"question": "Who teaches Cy the cello?", "answer": "Margarethe", "evidence": ["D:1:3"], "category": 4},
            {"question": "When did Di sprain a wrist?", "answer": "the Saturday before 15 June",
             "evidence": ["D2:01"], "category": 2},
            {"question": "Where is the cello recital?", "answer": "the old chapel on Fern Street",
             "evidence": ["D2:6", "D2:4"], "category": 1},
            {"question": "Does Di play the violin?", "adversarial_answer": "no", "evidence": ["D1:2"], "category": 5},
        ],
    },
]


def expected_questions() -> dict[int, int]:
    counts = dict.fromkeys(CATEGORIES, 0)
    for sample in SAMPLES:
        known = {t["dia_id"] for _, turns in turns_of(sample) for t in turns}
        for qa in sample["qa"]:
            if qa["category"] in CATEGORIES and evidence_ids(qa["evidence"], known):
                counts[qa["category"]] += 1
    return counts


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """One run over the synthetic file: (results.json, results.md)."""
    root = tmp_path_factory.mktemp("locomo")
    data = root / "locomo-tiny.json"
    data.write_text(json.dumps(SAMPLES), encoding="utf-8")
    out = root / "results"
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in list(os.environ):
            if name.startswith("MEMOS_") or name in ALIASES:
                monkeypatch.delenv(name)
        monkeypatch.chdir(root)
        assert run_locomo(settings_for(root / "d"), data, out, None) == 0
    return json.loads((out / "results.json").read_text(encoding="utf-8")), (out / "results.md").read_text(
        encoding="utf-8")


def every_summary(report: dict[str, Any]) -> list[dict[str, float]]:
    return [report["overall"], *report["per_category"].values(),
            report["bm25_baseline"]["overall"], *report["bm25_baseline"]["per_category"].values()]


# --- the run -----------------------------------------------------------------------------------------


def test_the_benchmark_writes_results_json_and_markdown(bench: tuple[dict[str, Any], str]) -> None:
    report, text = bench
    assert set(report) >= {"overall", "per_category", "bm25_baseline", "ingest", "search_ms", "machine", "data",
                           "config", "peak_rss_mb"}
    assert report["data"] == {"file": "locomo-tiny.json", "samples": 2}
    assert text.startswith("# LoCoMo evidence retrieval")
    assert "locomo-tiny.json, 2 samples" in text


def test_every_recall_hit_rate_and_mrr_lies_between_0_and_1(bench: tuple[dict[str, Any], str]) -> None:
    for summary in every_summary(bench[0]):
        for key in [*(f"recall@{k}" for k in KS), "hit@10", "mrr"]:
            assert 0.0 <= summary[key] <= 1.0, (key, summary)
        recalls = [summary[f"recall@{k}"] for k in KS]
        assert recalls == sorted(recalls)  # recall grows with k


def test_category_5_and_questions_without_existing_evidence_are_not_counted(
    bench: tuple[dict[str, Any], str],
) -> None:
    report = bench[0]
    counts = expected_questions()
    assert counts == {1: 2, 2: 2, 3: 1, 4: 2}
    assert report["overall"]["questions"] == sum(counts.values()) == 7
    assert {name: s["questions"] for name, s in report["per_category"].items()} == {
        CATEGORIES[c]: n for c, n in counts.items()}
    assert "adversarial" not in report["per_category"]
    assert report["search_ms"]["queries"] == 7
    assert report["bm25_baseline"]["overall"]["questions"] == 7


def test_the_bm25_baseline_section_is_present(bench: tuple[dict[str, Any], str]) -> None:
    report, text = bench
    assert set(report["bm25_baseline"]["per_category"]) == set(CATEGORIES.values())
    assert "## plain BM25 baseline (same turns, same run)" in text
    assert report["bm25_baseline"]["overall"]["recall@20"] > 0


def test_ingest_counts_every_turn(bench: tuple[dict[str, Any], str]) -> None:
    report, text = bench
    turns = sum(len(t) for sample in SAMPLES for _, t in turns_of(sample))
    assert turns == 26
    assert report["ingest"]["turns"] == turns
    assert report["ingest"]["seconds"] > 0
    assert f"Ingest: {turns} turns" in text


def test_an_obviously_answerable_question_is_found_at_rank_1(bench: tuple[dict[str, Any], str]) -> None:
    # The only open-domain question names its evidence turn's rare words (the photo caption's).
    open_domain = bench[0]["per_category"]["open-domain"]
    assert open_domain["questions"] == 1
    assert open_domain["mrr"] == 1.0
    assert open_domain["recall@1"] == 1.0
    assert bench[0]["overall"]["hit@10"] > 0.5


def test_latency_percentiles_are_ordered(bench: tuple[dict[str, Any], str]) -> None:
    latency = bench[0]["search_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]


def test_a_run_without_an_output_folder_writes_no_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "one.json"
    data.write_text(json.dumps(SAMPLES), encoding="utf-8")
    assert run_locomo(settings_for(tmp_path / "d"), data, None, 1) == 0
    printed = capsys.readouterr().out
    assert "one.json, 1 samples" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.json"]


# --- helpers -----------------------------------------------------------------------------------------

KNOWN = {"D1:3", "D2:1", "D8:6", "D9:17", "D11:26", "D30:5"}


@pytest.mark.parametrize(("raw", "expected"), [
    (["D8:6; D9:17"], ["D8:6", "D9:17"]),
    (["D:11:26"], ["D11:26"]),
    (["D30:05"], ["D30:5"]),
    (["D"], []),
    ([""], []),
    (["D1:3", "D2:1"], ["D1:3", "D2:1"]),
    (["D1:3", "D1:03", "D:1:3"], ["D1:3"]),
    (["D2:1", "D7:7", "D1:3"], ["D2:1", "D1:3"]),
    (["D1:3; D7:7"], ["D1:3"]),
])
def test_evidence_ids_repair_malformed_forms_and_drop_unknown_ids(raw: list[str], expected: list[str]) -> None:
    assert evidence_ids(raw, KNOWN) == expected


def test_percentile_of_nothing_is_zero() -> None:
    assert percentile([], 50) == 0.0


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([7.0], 50, 7.0),
    ([7.0], 99, 7.0),
    ([3.0, 1.0, 2.0], 0, 1.0),
    ([3.0, 1.0, 2.0], 100, 3.0),
    ([4.0, 1.0, 3.0, 2.0], 50, 2.0),
    ([float(v) for v in range(1, 6)], 50, 3.0),
    ([float(v) for v in range(1, 101)], 50, 50.0),
    ([float(v) for v in range(1, 11)], 95, 10.0),
    ([float(v) for v in range(1, 21)], 99, 20.0),
])
def test_percentile_is_the_nearest_rank_value_of_the_unsorted_input(values: list[float], q: float,
                                                                    expected: float) -> None:
    assert percentile(values, q) == expected


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([float(v) for v in range(1, 101)], 95, 95.0),
    ([1.0, 2.0, 3.0, 4.0], 75, 3.0),
])
def test_percentile_is_the_nearest_rank_value_when_the_rank_is_a_whole_odd_number(
    values: list[float], q: float, expected: float,
) -> None:
    assert percentile(values, q) == expected


def test_a_photo_caption_is_part_of_the_turn_text() -> None:
    assert turn_text({"text": "Look!", "blip_caption": "a red kayak"}) == "Look! [shares a photo: a red kayak]"
    assert turn_text({"text": "Plain."}) == "Plain."


def test_sessions_are_taken_in_numeric_order_with_their_dates() -> None:
    sample = {"conversation": {
        "session_10": [turn("D10:1", "A", "ten")], "session_10_date_time": "ten o'clock",
        "session_2": [turn("D2:1", "A", "two")], "session_2_date_time": "two o'clock",
        "session_2_summary": "not a session", "speaker_a": "A",
    }}
    assert [(when, [t["text"] for t in turns]) for when, turns in turns_of(sample)] == [
        ("two o'clock", ["two"]), ("ten o'clock", ["ten"])]


def test_the_graph_section_compares_the_same_questions_with_and_without_expansion(
        bench: tuple[dict[str, Any], str]) -> None:
    report, text = bench
    graph = report["graph"]
    for side in ("without", "with"):
        assert graph[side]["overall"]["questions"] == report["overall"]["questions"]
        assert 0 < graph[side]["search_ms"]["p50"] <= graph[side]["search_ms"]["p95"]
    assert report["graph_config"]["search"] and graph["with"]["overall"] == report["overall"]  # on by default
    assert graph["gain"]["multi_hop_recall@10"] == pytest.approx(
        graph["with"]["per_category"]["multi-hop"]["recall@10"]
        - graph["without"]["per_category"]["multi-hop"]["recall@10"])
    assert "## graph expansion (the same questions with and without it, same store, same run)" in text


def test_an_audit_replaces_the_evidence_of_the_questions_it_corrects(tmp_path: Path) -> None:
    data, audit, out = tmp_path / "one.json", tmp_path / "audit.json", tmp_path / "out"
    data.write_text(json.dumps(SAMPLES[1:]), encoding="utf-8")
    audit.write_text(json.dumps([
        {"question_id": "locomo_0_qa0", "correct_evidence": ["D1:3", "D2:4"]},  # Margarethe, cello recital
        {"question_id": "locomo_0_qa1", "correct_evidence": ["D9:9"]},  # no such turn: no longer counted
        {"question_id": "locomo_7_qa0", "correct_evidence": ["D1:1"]},  # another sample: not in this run
        {"question_id": "locomo_0_qa2", "correct_answer": "no evidence field"},
    ]), encoding="utf-8")
    assert run_locomo(settings_for(tmp_path / "d"), data, out, None, audit) == 0
    report = json.loads((out / "results.json").read_text(encoding="utf-8"))

    assert report["data"]["audit"] == {"file": "audit.json", "corrected": 2}
    assert report["overall"]["questions"] == 2  # the temporal question's corrected evidence does not exist
    assert report["per_category"]["temporal"]["questions"] == 0
    assert "Evidence as corrected by audit.json (2 questions)." in (out / "results.md").read_text(encoding="utf-8")


def test_the_cli_runs_the_benchmark_with_an_audit(tmp_path: Path) -> None:
    data, audit = tmp_path / "one.json", tmp_path / "audit.json"
    data.write_text(json.dumps(SAMPLES), encoding="utf-8")
    audit.write_text(json.dumps([{"question_id": "locomo_1_qa0", "correct_evidence": ["D1:1"]}]), encoding="utf-8")
    result = memos(tmp_path, tmp_path / "d", "bench", "locomo", "--data", str(data), "--audit", str(audit),
                   "--samples", "2")
    assert result.returncode == 0, result.stderr
    assert "Evidence as corrected by audit.json (1 questions)." in result.stdout
    assert "## graph expansion" in result.stdout


# --- the facts mode ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """One run over the synthetic file in both modes: (results.json, results.md)."""
    root = tmp_path_factory.mktemp("locomo-both")
    data, out = root / "locomo-tiny.json", root / "results"
    data.write_text(json.dumps(SAMPLES), encoding="utf-8")
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in list(os.environ):
            if name.startswith("MEMOS_") or name in ALIASES:
                monkeypatch.delenv(name)
        assert run_locomo(settings_for(root / "d"), data, out, None, modes=("conversations", "facts")) == 0
    return json.loads((out / "results.json").read_text(encoding="utf-8")), (out / "results.md").read_text(
        encoding="utf-8")


def test_the_facts_mode_adds_one_fact_per_turn_and_asks_the_same_questions(both: tuple[dict[str, Any], str]) -> None:
    report, text = both
    facts = report["modes"]["facts"]
    assert report["mode"] == "conversations" and facts["mode"] == "facts"
    assert facts["overall"]["questions"] == report["overall"]["questions"] > 0
    assert facts["ingest"]["turns"] == report["ingest"]["turns"] == 26
    assert facts["per_category"]["open-domain"]["recall@1"] == 1.0  # the caption's rare words, as for messages
    for summary in (facts["overall"], *facts["per_category"].values()):
        assert all(0 <= summary[k] <= 1 for k in ("recall@1", "recall@5", "recall@10", "recall@20", "hit@10", "mrr"))
    assert facts["graph"]["with"]["overall"] == facts["overall"]
    assert "## facts path (`--as facts`: one add per turn" in text and "Graph expansion, facts path:" in text
    assert len(report["load_average"]) == 3 and "Load average at the end of the run" in text


def test_the_cli_runs_the_facts_mode_alone(tmp_path: Path) -> None:
    data = tmp_path / "one.json"
    data.write_text(json.dumps(SAMPLES), encoding="utf-8")
    result = memos(tmp_path, tmp_path / "d", "bench", "locomo", "--data", str(data), "--as", "facts",
                   "--samples", "1")
    assert result.returncode == 0, result.stderr
    assert "no LLM): facts path" in result.stdout and "## facts path" not in result.stdout
    bad = memos(tmp_path, tmp_path / "d", "bench", "locomo", "--data", str(data), "--as", "notes")
    assert bad.returncode == 2 and "invalid choice: 'notes'" in bad.stderr
