"""The English NER the engine ships: the NER of en_core_web_sm (spaCy, MIT) fine-tuned by
`bench/train_en_ner.py` on English corpora with open licences (the Broad Twitter Corpus,
WNUT-17 and wikigold, each CC BY 4.0), so that it holds on social media and lower-case chat as
well as news. The weights live in the repository (8 MB, `models/en_ner`); their SHA-256 digests
are checked before they are loaded, as the Chinese model's are. Provenance, licences and figures:
`models/en_ner/README.md`."""

from __future__ import annotations

import hashlib
import importlib
import logging
from collections import Counter
from collections.abc import Collection
from functools import cache
from pathlib import Path
from typing import Any

import spacy
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
from spacy.language import Language
from spacy.tokens import Doc
from thinc.api import Linear, Model, NumpyOps
from threadpoolctl import threadpool_limits

logger = logging.getLogger(__name__)

NAME = "pgw-en-ner"  # the value of PGW_NLP_MODEL_EN that selects it (the default)
MODEL_DIR = Path(__file__).resolve().parent / "models" / "en_ner"
MODEL_FILES = {
    "config.cfg": "5a7c95bcf3e2b64e619618e2ac25df5001099f07a5ab8e5204d1496ee163c527",
    "meta.json": "206ee12d879937b086946b22a23861973c39d1a52425a76d1c286ddd554c5c9c",
    "ner/cfg": "a7172edadafba9f472e9ac0f2660eec04b6405e471be9e20267b79c67288d22d",
    "ner/model": "897c9f9c375d272c67cc61fece12da9b9f146b8531ec1010aa00ef2726fe86f0",
    "ner/moves": "d82b13473ebd33e0396004dd22f00c71fe3c1251742bf1f7c4554f23fd3b0af4",
    "tokenizer": "b014e8bba4958b120af2d0c1c63eabb7c00379f2bacaf10df7c5325efd2ea467",
    "vocab/key2row": "76be8b528d0075f7aae98d6fa57a6d3c83ae480a8469e668d7b0af968995ac71",
    "vocab/lookups.bin": "fce9c883c56165f29573cc938c2a1c9d417ac61bd8f56b671dd5f7996de70682",
    "vocab/strings.json": "633161b8428be4b743d8f72177565e572944d94551e321368fef53463b5fe323",
    "vocab/vectors": "14772b683e726436d5948ad3fff2b43d036ef2ebbe3458aafed6004e05a40706",
    "vocab/vectors.cfg": "ff4359091952c8cd16f1f0482f5770fb82d1707368d5cca3c46aa501f552e3c5",
}

# The model's labels the engine reports, as Presidio's entity types (PER and LOC: models trained
# on CoNLL-style labels)
ENTITY_TYPES = {"PER": "PERSON", "PERSON": "PERSON", "LOC": "LOCATION", "GPE": "LOCATION",
                "FAC": "LOCATION", "ORG": "ORGANIZATION", "NORP": "NRP", "DATE": "DATE_TIME",
                "TIME": "DATE_TIME"}
# OntoNotes labels the engine reports nothing for
IGNORED_LABELS = ("CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT", "PRODUCT", "EVENT",
                  "WORK_OF_ART", "LAW", "LANGUAGE")
# ... and the ones among them the parser does not weigh at all. CARDINAL stays: without it,
# numbers the model calls CARDINAL are read as DATE or TIME (176 in the 4,009 dev texts of
# CoNLL-2003, BTC and WNUT-17; without the other nine, 20 of 4,452 entities change there)
UNDECODED_LABELS = frozenset(IGNORED_LABELS) - {"CARDINAL"}


class ModelMismatch(RuntimeError):
    """A model file is missing or is not the one this version was tested with."""


def verified_path(root: Path = MODEL_DIR) -> Path:
    for name, expected in MODEL_FILES.items():
        try:
            digest = hashlib.sha256((root / name).read_bytes()).hexdigest()
        except FileNotFoundError:
            raise ModelMismatch(f"{root / name} is missing; reinstall the gateway") from None
        if digest != expected:
            raise ModelMismatch(f"{root / name}: sha256 {digest}, expected {expected}")
    return root


@cache
def ops() -> NumpyOps:
    """The operations the English model runs with: its matrix products through NumPy's BLAS
    (OpenBLAS, which recognises more CPUs than blis's own: on a CPU blis does not recognise, it
    multiplies with its generic reference kernel, at a third of the speed), on one thread per
    process (each gateway process reads on one core; its scan helper takes the second).
    One per process: the BLAS thread limit is set once."""
    threadpool_limits(1, user_api="blas")
    return NumpyOps(use_blis=False)


def load_ner_pipeline(model: str) -> Language:
    """Load the shipped model (checked against its digests), or an installed spaCy package
    (never downloaded), with only what NER needs enabled, running with `ops()`, its parser
    choosing among the moves of every label but UNDECODED_LABELS."""
    if model == NAME:
        nlp: Language = spacy.load(verified_path())
    else:
        try:
            nlp = importlib.import_module(model).load()
        except ModuleNotFoundError:
            nlp = spacy.load(model)  # a path, or a package spaCy finds by its entry point
    model_ops = ops()
    for _, pipe in nlp.pipeline:
        if isinstance(layers := getattr(pipe, "model", None), Model):
            for layer in layers.walk():
                layer.ops = model_ops
    if "ner" not in nlp.pipe_names:
        raise ValueError(f"spaCy model {model!r} has no 'ner' component")
    needed = {"ner"} | {name for name, pipe in nlp.pipeline
                        if "ner" in getattr(pipe, "listening_components", [])}
    nlp.select_pipes(enable=sorted(needed))
    drop_labels(nlp, UNDECODED_LABELS)
    return nlp


def drop_labels(nlp: Language, labels: Collection[str]) -> None:
    """Take the moves of `labels` out of the NER's transition system and their rows out of its
    output layer: the parser then decodes exactly as if their scores were masked, and does
    not spend its time on them. At every token the greedy parser checks each of its moves
    for validity (spaCy's `set_valid`, half of the NER's time with the 74 moves of the 18
    OntoNotes labels); the 9 labels dropped by default take 36 moves out of 74.

    A model without a separate output layer (`use_upper = false`) is left as it is."""
    ner: Any = nlp.get_pipe("ner")  # spaCy's compiled Parser: no types to check against
    moves = ner.moves
    present = {label for actions in moves.labels.values() for label in actions}
    if not present & set(labels):
        return
    if not ner.model.attrs.get("has_upper"):
        logger.info("NER model without an output layer: its labels are all decoded")
        return
    names = [moves.get_class_name(i) for i in range(moves.n_moves)]
    moves.initialize_actions({action: Counter({label: freq for label, freq in actions.items()
                                               if label not in labels})
                              for action, actions in moves.labels.items()})
    kept = [names.index(moves.get_class_name(i)) for i in range(moves.n_moves)]
    upper = ner.model.get_ref("upper")
    smaller = Linear(nO=len(kept), nI=upper.get_dim("nI"))
    smaller.ops = upper.ops
    smaller.set_param("W", upper.get_param("W")[kept].copy())
    smaller.set_param("b", upper.get_param("b")[kept].copy())
    ner.model.layers[ner.model.layers.index(upper)] = smaller
    ner.model.set_ref("upper", smaller)
    ner.model.attrs["unseen_classes"] = {kept.index(c) for c in ner.model.attrs["unseen_classes"]
                                         if c in kept}


class PreloadedNlpEngine(SpacyNlpEngine):
    """SpacyNlpEngine over pipelines we loaded; its own load() would download missing models."""

    def __init__(self, pipelines: dict[str, Language]):
        super().__init__(models=[{"lang_code": lang, "model_name": "preloaded"}
                                 for lang in pipelines],
                         ner_model_configuration=NerModelConfiguration(
                             model_to_presidio_entity_mapping=ENTITY_TYPES,
                             labels_to_ignore=list(IGNORED_LABELS)))
        self.nlp = pipelines  # type: ignore[assignment]

    def load(self) -> None:
        return None

    def _doc_to_nlp_artifact(self, doc: Doc, language: str) -> NlpArtifacts:
        """Only what our recognizers read, the entities and their scores: no lemmas or token
        offsets, whose building cost a fifth of an English scan (our context enhancer reads the
        text itself)."""
        entities, scores = self._get_updated_entities(
            list(doc.ents), [float(self.ner_model_configuration.default_score or 0.85)]
            * len(doc.ents))
        return NlpArtifacts(entities=entities, tokens=doc, tokens_indices=[], lemmas=[],
                            nlp_engine=self, language=language, scores=scores)
