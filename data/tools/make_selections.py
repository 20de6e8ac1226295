"""Write data/selections/: for every fetched bundle file, the recipe that rebuilds it from pinned source files.

A selection names its source files (repository, commit, path, git blob, format) and, per output file, the
row templates ("parts": which source field goes into which JSON field, label maps, stripping) and the rows
as [part, source index, ...] in file order. The rows are found by matching: every candidate source record is
rendered with the template (socialite_utils.data.fetch.render_file, the code the fetcher runs) and each line
of the reference bundle is looked up byte for byte, so a selection reproduces the bundle exactly or this
script stops.

    python data/tools/make_selections.py --bundles /work/shared/data --mirrors /work/.mirror

--mirrors holds bare git mirrors named <owner>+<name>/repo (as the project's fetch tool lays them out).
Each source file is read with `git show COMMIT:PATH` and its git blob checked against the bundle MANIFEST.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from socialite_utils.data.fetch import git_blob_sha1, parse_source, render_file  # noqa: E402

TWEETEVAL = "cardiffnlp/tweeteval"
SPLITS = {"train": "train", "validation": "val", "test": "test"}


class Mirrors:
    """Reads pinned source files out of local bare git mirrors and checks their git blob."""

    def __init__(self, root: Path):
        self.root = root

    def git_dir(self, repo: str) -> Path:
        base = self.root / repo.replace("/", "+") / "repo"
        return base / ".git" if (base / ".git").is_dir() else base

    def read(self, source: dict) -> bytes:
        data = subprocess.run(
            [
                "git",
                "--git-dir",
                str(self.git_dir(source["repo"])),
                "show",
                f"{source['commit']}:{source['path']}",
            ],
            check=True,
            capture_output=True,
        ).stdout
        blob = git_blob_sha1(data)
        if blob != source["git_blob"]:
            sys.exit(f"{source['repo']}/{source['path']}: git blob {blob} != manifest {source['git_blob']}")
        return data


def repo_slug(url: str) -> str:
    return url.removeprefix("https://github.com/").rstrip("/")


def source(src: dict, path: str, blob: str, fmt: str = "lines", **extra) -> dict:
    """A selection's source entry from a manifest source block (repo URL + commit) and one file."""
    out = {
        "repo": repo_slug(src["repo"]),
        "commit": src["commit"],
        "path": path,
        "git_blob": blob,
        "format": fmt,
    }
    out.update(extra)
    return out


def match_rows(
    lines: list[bytes], parts: list[dict], candidates: list[list[tuple]], records: dict, what: str
):
    """[part, idx, ...] for each reference line: the first candidate (by part, then index) rendering to it."""
    lookup: dict[bytes, list] = {}
    for p, cands in enumerate(candidates):
        spec = {"parts": parts, "rows": [[p, *c] for c in cands]}
        rendered = render_file(spec, records).split(b"\n")[:-1]
        for row, line in zip(spec["rows"], rendered, strict=True):
            lookup.setdefault(line, row)
    rows, missing = [], []
    for n, line in enumerate(lines):
        if line in lookup:
            rows.append(lookup[line])
        else:
            missing.append(n)
    if missing:
        sys.exit(
            f"{what}: {len(missing)} of {len(lines)} lines match no source record, e.g. line {missing[0]}: "
            f"{lines[missing[0]][:200]!r}"
        )
    return rows


def ref_lines(path: Path) -> list[bytes]:
    raw = path.read_bytes()
    assert raw.endswith(b"\n"), path
    return raw.split(b"\n")[:-1]


def build_selection(
    bundle: str, task: str, sources: dict, files: list[dict], ref_dir: Path, mirrors: Mirrors
):
    """files: [{file, parts, candidates}] -> the selection dict, rows matched against the reference bundle."""
    records = {sid: parse_source(mirrors.read(src), src) for sid, src in sources.items()}
    out_files = []
    for f in files:
        candidates = [[(i,) if isinstance(i, int) else tuple(i) for i in c] for c in f["candidates"]]
        lines = ref_lines(ref_dir / f["file"])
        rows = match_rows(lines, f["parts"], candidates, records, f"{bundle}/{f['file']}")
        spec = {"file": f["file"], "n": len(rows), "parts": f["parts"], "rows": rows}
        assert render_file(spec, records) == (ref_dir / f["file"]).read_bytes(), f["file"]
        out_files.append(spec)
    return {"bundle": bundle, "task": task, "sources": sources, "files": out_files}


# ------------------------------------------------------------------------------------------ social_tasks


def tweeteval_label_map(records, text_id, label_id, ref: Path) -> dict:
    """{source label id: bundle label} learnt from rows whose text occurs once in the source split."""
    texts, labels = records[text_id], records[label_id]
    where: dict[str, list[int]] = {}
    for i, t in enumerate(texts):
        where.setdefault(t, []).append(i)
    mapping: dict[str, str] = {}
    for line in ref_lines(ref):
        obj = json.loads(line)
        hits = where.get(obj["text"], [])
        if len(hits) == 1:
            old = mapping.setdefault(labels[hits[0]], obj["label"])
            assert old == obj["label"], (ref, obj)
    return dict(sorted(mapping.items(), key=lambda kv: int(kv[0])))


def social_selections(ref_root: Path, mirrors: Mirrors):
    bundle = "social_tasks"
    manifest = json.loads((ref_root / bundle / "MANIFEST.json").read_text())
    folders = {
        "tweet_emotion": "emotion",
        "tweet_irony": "irony",
        "tweet_offensive": "offensive",
        "tweet_hate": "hate",
        "tweet_emoji": "emoji",
        "tweet_sentiment": "sentiment",
        "tweet_stance": "stance",
    }
    for task in manifest["tasks"]:
        name = task["name"]
        if name not in folders:
            continue
        src, blobs = task["source"], {p["path"]: p["git_blob"] for p in task["source"]["paths"]}
        assert repo_slug(src["repo"]) == TWEETEVAL
        # the official train split of sentiment was not used: train and validation both come from val
        split_src = dict(SPLITS, train="val") if name == "tweet_sentiment" else SPLITS
        targets = sorted({p.split("/")[2] for p in blobs}) if name == "tweet_stance" else [None]
        sources = {}
        for t in targets:
            for s in sorted(set(split_src.values())):
                for kind in ("text", "labels"):
                    folder = f"datasets/stance/{t}" if t else f"datasets/{folders[name]}"
                    path = f"{folder}/{s}_{kind}.txt"
                    sid = f"{t}_{s}_{kind}" if t else f"{s}_{kind}"
                    sources[sid] = source(src, path, blobs[path])
        records = {sid: parse_source(mirrors.read(s), s) for sid, s in sources.items()}
        files = []
        for split, s in split_src.items():
            ref = ref_root / bundle / name / f"{split}.jsonl"
            parts, candidates = [], []
            if targets[0]:  # stance: one part per target, the target name as text_b
                target_names = {}
                for line in ref_lines(ref):
                    obj = json.loads(line)
                    for tt in targets:
                        if obj["text"] in records[f"{tt}_{s}_text"]:
                            target_names.setdefault(tt, obj["text_b"])
                label_map = {}
                for tt in targets:
                    label_map.update(tweeteval_label_map(records, f"{tt}_{s}_text", f"{tt}_{s}_labels", ref))
                for tt in targets:
                    parts.append(
                        {
                            "fields": [
                                ["text", {"src": f"{tt}_{s}_text"}],
                                ["text_b", {"const": target_names[tt]}],
                                ["label", {"src": f"{tt}_{s}_labels", "map": label_map}],
                            ]
                        }
                    )
                    candidates.append(list(range(len(records[f"{tt}_{s}_text"]) - 1)))
            else:
                label_map = tweeteval_label_map(records, f"{s}_text", f"{s}_labels", ref)
                parts.append(
                    {
                        "fields": [
                            ["text", {"src": f"{s}_text"}],
                            ["label", {"src": f"{s}_labels", "map": label_map}],
                        ]
                    }
                )
                candidates.append(list(range(len(records[f"{s}_text"]) - 1)))
            files.append({"file": f"{name}/{split}.jsonl", "parts": parts, "candidates": candidates})
        yield name, build_selection(bundle, name, sources, files, ref_root / bundle, mirrors)


# ----------------------------------------------------------------------------------------- writing_tasks


def writing_selections(ref_root: Path, mirrors: Mirrors):
    bundle = "writing_tasks"
    manifest = json.loads((ref_root / bundle / "MANIFEST.json").read_text())
    tasks = {t["task"]: t for t in manifest["tasks"]}

    # fluency: JFLEG, source = stripped .src line, references = the four stripped .refN lines
    t = tasks["fluency"]
    blobs = {f["path"]: f["git_blob"] for f in t["source"]["files"]}
    sources = {}
    for split in ("dev", "test"):
        for kind in ("src", "ref0", "ref1", "ref2", "ref3"):
            path = f"{split}/{split}.{kind}"
            sources[f"{split}_{kind}"] = source(t["source"], path, blobs[path])

    def jfleg(split):
        refs = [{"src": f"{split}_ref{k}", "strip": True} for k in range(4)]
        return [
            {
                "fields": [
                    ["source", {"src": f"{split}_src", "strip": True}],
                    ["target", refs[0]],
                    ["references", {"list": refs}],
                ]
            }
        ]

    files = [
        {"file": "fluency/train.jsonl", "parts": jfleg("dev"), "candidates": [range(754)]},
        {"file": "fluency/validation.jsonl", "parts": jfleg("dev"), "candidates": [range(754)]},
        {"file": "fluency/test.jsonl", "parts": jfleg("test"), "candidates": [range(747)]},
    ]
    yield "fluency", build_selection(bundle, "fluency", sources, files, ref_root / bundle, mirrors)

    # simplification: ASSET (.orig + 10 .simp.N) and TurkCorpus GEM test (.norm + 8 .turk.N)
    t = tasks["simplification"]
    asset, turk = t["source"]
    ablobs = {f["path"]: f["git_blob"] for f in asset["files"]}
    tblobs = {f["path"]: f["git_blob"] for f in turk["files"]}
    sources = {}
    for split in ("valid", "test"):
        sources[f"asset_{split}_orig"] = source(
            asset, f"dataset/asset.{split}.orig", ablobs[f"dataset/asset.{split}.orig"]
        )
        for k in range(10):
            p = f"dataset/asset.{split}.simp.{k}"
            sources[f"asset_{split}_simp{k}"] = source(asset, p, ablobs[p])
    tdir = "data/turkcorpus/GEM/test.8turkers.tok"
    sources["turk_test_norm"] = source(turk, f"{tdir}.norm", tblobs[f"{tdir}.norm"])
    for k in range(8):
        sources[f"turk_test_turk{k}"] = source(turk, f"{tdir}.turk.{k}", tblobs[f"{tdir}.turk.{k}"])

    def simp(prefix, orig, n):
        refs = [{"src": f"{prefix}{k}", "strip": True} for k in range(n)]
        return [
            {
                "fields": [
                    ["source", {"src": orig, "strip": True}],
                    ["target", refs[0]],
                    ["references", {"list": refs}],
                ]
            }
        ]

    files = [
        {
            "file": "simplification/train.jsonl",
            "parts": simp("asset_valid_simp", "asset_valid_orig", 10),
            "candidates": [range(2000)],
        },
        {
            "file": "simplification/validation.jsonl",
            "parts": simp("asset_valid_simp", "asset_valid_orig", 10),
            "candidates": [range(2000)],
        },
        {
            "file": "simplification/test.jsonl",
            "parts": simp("asset_test_simp", "asset_test_orig", 10),
            "candidates": [range(359)],
        },
        {
            "file": "simplification/test_turkcorpus.jsonl",
            "parts": simp("turk_test_turk", "turk_test_norm", 8),
            "candidates": [range(359)],
        },
    ]
    yield (
        "simplification",
        build_selection(bundle, "simplification", sources, files, ref_root / bundle, mirrors),
    )

    # paraphrase: STS-B (stsb-multi-mt English CSVs: sentence1, sentence2, score), pairs scored 5.0
    t = tasks["paraphrase"]
    blobs = {f["path"]: f["git_blob"] for f in t["source"]["files"]}
    sources = {
        s: source(t["source"], f"data/stsb-en-{s}.csv", blobs[f"data/stsb-en-{s}.csv"], "csv")
        for s in ("train", "dev", "test")
    }
    records = {sid: parse_source(mirrors.read(s), s) for sid, s in sources.items()}

    def sts(split):
        return [
            {
                "fields": [
                    ["source", {"src": split, "key": [0]}],
                    ["target", {"src": split, "key": [1]}],
                    ["references", {"list": [{"src": split, "key": [1]}]}],
                ]
            }
        ]

    files = [
        {"file": f"paraphrase/{out}.jsonl", "parts": sts(s), "candidates": [range(len(records[s]))]}
        for out, s in (("train", "train"), ("validation", "dev"), ("test", "test"))
    ]
    yield "paraphrase", build_selection(bundle, "paraphrase", sources, files, ref_root / bundle, mirrors)


# ---------------------------------------------------------------------------------- general_instructions


def general_selections(ref_root: Path, mirrors: Mirrors):
    bundle = "general_instructions"
    manifest = json.loads((ref_root / bundle / "MANIFEST.json").read_text())
    comps = {c["name"]: c for c in manifest["components"]}
    sources = {}
    c = comps["self_instruct_seed_tasks"]["source"]
    sources["self_instruct"] = source(c, "data/seed_tasks.jsonl", c["files"][0]["git_blob"], "jsonl")
    c = comps["alpaca_libre"]["source"]
    for f in c["files"]:
        if f["path"].endswith(".jsonl"):
            v = f["path"].rsplit("_", 1)[1].removesuffix(".jsonl")
            sources[f"alpaca_libre_{v}"] = source(c, f["path"], f["git_blob"], "jsonl")
    c = comps["llamafactory_alpaca_en_demo"]["source"]
    sources["llamafactory_demo"] = source(c, "data/alpaca_en_demo.json", c["files"][0]["git_blob"], "json")
    records = {sid: parse_source(mirrors.read(s), s) for sid, s in sources.items()}

    ref = ref_root / bundle / "train.jsonl"
    rows = [json.loads(line) for line in ref_lines(ref)]

    # placeholder inputs the bundle blanked: source inputs of rows whose (instruction, output) match a row
    # with input "" (learnt from the data, then written into the selection as a map to "")
    def keys(sid):
        recs = records[sid]
        n = len(recs) if isinstance(recs, list) else len(recs._lines)
        for i in range(n):
            try:
                r = recs[i]
            except ValueError:
                continue
            if sid == "self_instruct":
                yield i, r["instruction"], r["instances"][0]["input"], r["instances"][0]["output"]
            else:
                yield i, r.get("instruction"), r.get("input"), r.get("output")

    blanked = set()
    by_io = {}
    for sid in sources:
        for i, ins, inp, out in keys(sid):
            if isinstance(ins, str) and isinstance(out, str):
                by_io.setdefault((ins.strip(), out.strip()), []).append((sid, i, inp))
    for r in rows:
        if r["input"] == "":
            for _sid, _i, inp in by_io.get((r["instruction"], r["output"]), []):
                if isinstance(inp, str) and inp.strip() != "":
                    blanked.add(inp.strip())
    blank = {p: "" for p in sorted(blanked)}
    print(f"general_instructions: inputs mapped to '': {sorted(blanked)}", file=sys.stderr)

    def part(sid, tag):
        if sid == "self_instruct":
            ins, inp, out = ["instruction"], ["instances", 0, "input"], ["instances", 0, "output"]
        else:
            ins, inp, out = ["instruction"], ["input"], ["output"]
        fields = [
            ["instruction", {"src": sid, "key": ins, "strip": True}],
            ["input", {"src": sid, "key": inp, "strip": True, "map": blank}],
            ["output", {"src": sid, "key": out, "strip": True}],
            ["source", {"const": tag}],
        ]
        return {"fields": fields}

    order = ["self_instruct", "alpaca_libre_v1", "alpaca_libre_v2", "alpaca_libre_v3", "llamafactory_demo"]
    tags = {"self_instruct": "self_instruct_seed_tasks", "llamafactory_demo": "llamafactory_alpaca_en_demo"}
    parts, candidates = [], []
    for sid in order:
        parts.append(part(sid, tags.get(sid, sid)))
        candidates.append(
            [
                i
                for i, ins, inp, out in keys(sid)
                if isinstance(ins, str) and isinstance(inp, str) and isinstance(out, str)
            ]
        )
    files = [{"file": "train.jsonl", "parts": parts, "candidates": candidates}]
    yield "train", build_selection(bundle, "train", sources, files, ref_root / bundle, mirrors)


ROWS_NOTE = (
    "each output line is json.dumps(row object, ensure_ascii=False); a row [p, i] takes part p's fields from "
    "record i (0-based) of their source files: line i of a 'lines' or 'jsonl' file, element i of a 'json' "
    "array, record i of a 'csv' file (0 is the header); 'key' goes into the record, 'strip' strips white "
    "space, 'map' replaces the values it lists and keeps the others, 'const' is a fixed value"
)


def dump(selection: dict) -> str:
    """Indented JSON with one source, one field and one row a line, so the files read and diff well."""

    def one(v):
        return json.dumps(v, ensure_ascii=False)

    out = [
        "{",
        f' "bundle": {one(selection["bundle"])},',
        f' "task": {one(selection["task"])},',
        f' "rows_note": {one(ROWS_NOTE)},',
        ' "sources": {',
    ]
    items = list(selection["sources"].items())
    out += [f"  {one(k)}: {one(v)}" + ("," if n < len(items) - 1 else "") for n, (k, v) in enumerate(items)]
    out += [" },", ' "files": [']
    for fn, f in enumerate(selection["files"]):
        out += ["  {", f'   "file": {one(f["file"])},', f'   "n": {f["n"]},', '   "parts": [']
        for pn, part in enumerate(f["parts"]):
            fields = part["fields"]
            out += ['    {"fields": [']
            out += [f"     {one(fl)}" + ("," if k < len(fields) - 1 else "") for k, fl in enumerate(fields)]
            out += ["    ]}" + ("," if pn < len(f["parts"]) - 1 else "")]
        out += ["   ],", '   "rows": [']
        out += [f"    {one(r)}" + ("," if k < len(f["rows"]) - 1 else "") for k, r in enumerate(f["rows"])]
        out += ["   ]", "  }" + ("," if fn < len(selection["files"]) - 1 else "")]
    out += [" ]", "}"]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--out", type=Path, default=REPO / "data" / "selections")
    args = parser.parse_args()
    mirrors = Mirrors(args.mirrors)
    for bundle, gen in (
        ("social_tasks", social_selections),
        ("writing_tasks", writing_selections),
        ("general_instructions", general_selections),
    ):
        for task, selection in gen(args.bundles, mirrors):
            path = args.out / bundle / f"{task}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            text = dump(selection)
            assert json.loads(text) == json.loads(json.dumps(selection | {"rows_note": ROWS_NOTE})), path
            path.write_text(text, encoding="utf-8")
            print(
                f"{path.relative_to(args.out)}: {sum(f['n'] for f in selection['files'])} rows in "
                f"{len(selection['files'])} file(s) from {len(selection['sources'])} source file(s)"
            )


if __name__ == "__main__":
    main()
