"""The privacy boundary, checked mechanically: no column, attribute or dependency for face templates,
embeddings or identification anywhere."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_COLUMN = re.compile(r"embedding|template|feature_?vec|face_?(id_?)?vector|biometric|identity|face_?print")
FORBIDDEN_PACKAGES = {
    "face-recognition",
    "face_recognition",
    "dlib",
    "insightface",
    "deepface",
    "facenet-pytorch",
    "arcface",
    "mediapipe",
    "onnxruntime",
    "torch",
    "tensorflow",
    "keras",
}


def test_no_table_has_a_column_for_face_templates_or_embeddings(db):
    """No column of the migrated schema is named like a face template, embedding or identity."""
    columns = db.execute(
        "SELECT table_name || '.' || column_name FROM information_schema.columns WHERE table_schema = 'public'"
    ).fetchall()
    assert columns
    assert [c for (c,) in columns if FORBIDDEN_COLUMN.search(c)] == []


def test_no_dependency_identifies_faces():
    """pyproject.toml asks for no face recognition or embedding library (nor a framework to run one)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = [*project["dependencies"], *(d for extra in project["optional-dependencies"].values() for d in extra)]
    names = {re.split(r"[<>=!\[; ]", d, maxsplit=1)[0].lower() for d in wanted}
    assert names & FORBIDDEN_PACKAGES == set()


def test_face_attributes_are_dropped_at_the_adapters():
    """Every adapter that meets face data says so and drops attributes; none stores a face feature."""
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "ingest" / "adapters").glob("*.py"))
    assert not re.search(r"put\(attributes, \"(age|gender|sex|glass|mask|emotion|race|feature)", sources, re.I)
