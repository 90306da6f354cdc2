"""datatrove's MinHash deduplication on a folder of JSON lines, timed, for `luodi bench dedup`.

usage: python3 scripts/compare_datatrove.py INPUT_DIR WORK_DIR [--tasks N] [--buckets B]
       [--rows R] [--ngrams N]

Runs datatrove's four MinHash stages (signatures, buckets, clusters, filter) with its Chinese
word tokenizer (spaCy with jieba), the given LSH settings and N local tasks, and prints one JSON
line: seconds, documents, removed, and the file holding the removed ids (one per line).
Installs nothing: `luodi bench dedup` says what to pip install when an import fails.
"""
import argparse
import json
import os
import shutil
import sys
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("input")
    p.add_argument("work")
    p.add_argument("--tasks", type=int, default=2)
    p.add_argument("--buckets", type=int, default=14)
    p.add_argument("--rows", type=int, default=8)
    p.add_argument("--ngrams", type=int, default=5)
    a = p.parse_args()

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    cfg = MinhashConfig(n_grams=a.ngrams, num_buckets=a.buckets, hashes_per_bucket=a.rows)
    reader = lambda: JsonlReader(a.input, glob_pattern="*.jsonl", text_key="text", id_key="id")
    W = lambda *p: os.path.join(a.work, *p)
    t0 = time.time()
    LocalPipelineExecutor(
        pipeline=[reader(), MinhashDedupSignature(output_folder=W("sigs"), config=cfg, language="cmn")],
        tasks=a.tasks, workers=a.tasks, logging_dir=W("logs", "1"),
    ).run()
    LocalPipelineExecutor(
        pipeline=[MinhashDedupBuckets(input_folder=W("sigs"), output_folder=W("buckets"), config=cfg)],
        tasks=cfg.num_buckets, workers=a.tasks, logging_dir=W("logs", "2"),
    ).run()
    LocalPipelineExecutor(
        pipeline=[MinhashDedupCluster(input_folder=W("buckets"), output_folder=W("remove"), config=cfg)],
        tasks=1, logging_dir=W("logs", "3"),
    ).run()
    LocalPipelineExecutor(
        pipeline=[
            reader(),
            MinhashDedupFilter(input_folder=W("remove"), exclusion_writer=JsonlWriter(W("removed"), compression=None)),
            JsonlWriter(W("kept"), compression=None),
        ],
        tasks=a.tasks, workers=a.tasks, logging_dir=W("logs", "4"),
    ).run()
    seconds = time.time() - t0
    removed = []
    for root, _, files in os.walk(W("removed")):
        for f in files:
            with open(os.path.join(root, f), encoding="utf-8") as fh:
                for line in fh:
                    removed.append(json.loads(line)["id"])
    kept = 0
    for root, _, files in os.walk(W("kept")):
        for f in files:
            with open(os.path.join(root, f), encoding="utf-8") as fh:
                kept += sum(1 for _ in fh)
    with open(W("removed_ids.txt"), "w") as fh:
        fh.write("\n".join(removed) + "\n")
    print(json.dumps({"seconds": seconds, "documents": kept + len(removed), "removed": len(removed),
                      "removed_ids": W("removed_ids.txt")}))


# the workers of datatrove's executor import this file again: only the parent runs it
if __name__ == "__main__":
    main()
