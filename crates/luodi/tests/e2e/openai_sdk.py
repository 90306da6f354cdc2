"""The official `openai` package, unchanged, against `luodi serve`.

Run by the CLI test `openai_sdk_works_unchanged_against_luodi_serve` with LUODI_URL and
LUODI_KEY set; prints one JSON line of what it saw and exits non-zero on any failure.
"""
import json
import os
import sys

import openai
from openai import OpenAI

client = OpenAI(base_url=os.environ["LUODI_URL"] + "/v1", api_key=os.environ["LUODI_KEY"])
seen = {"sdk": openai.__version__}

# models: the local model and the knowledge bases this key may use
ids = [m.id for m in client.models.list()]
assert "kb:handbook" in ids, ids
seen["models"] = ids

# chat, not streamed: an answer with citations in an extra field
r = client.chat.completions.create(
    model="kb:handbook", messages=[{"role": "user", "content": "年假有几天？"}]
)
text = r.choices[0].message.content
assert r.choices[0].finish_reason == "stop", r
assert text and ("5" in text or "五" in text), text
cites = (r.model_extra or {}).get("citations") or []
assert cites and "请假" in cites[0]["title"], cites
assert r.usage.prompt_tokens > 0
seen["answer"] = text

# chat, streamed: chunks that add up to the answer, citations on the last one
stream = client.chat.completions.create(
    model="kb:handbook",
    messages=[{"role": "user", "content": "病假怎么请？"}],
    stream=True,
)
parts, last = [], None
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        parts.append(chunk.choices[0].delta.content)
    last = chunk
streamed = "".join(parts)
assert streamed.strip(), "nothing streamed"
assert last.choices[0].finish_reason == "stop"
assert (last.model_extra or {}).get("citations"), last
seen["streamed"] = streamed

# plain chat with the local model
r = client.chat.completions.create(
    model=ids[0], messages=[{"role": "user", "content": "Say OK."}], max_tokens=8
)
assert r.choices[0].message.content, r
seen["plain"] = r.choices[0].message.content

# embeddings (the SDK asks for base64 and decodes it)
e = client.embeddings.create(model="e5", input=["年假", "年假有几天", "报销发票"])
vecs = [d.embedding for d in e.data]
assert len(vecs) == 3 and len(vecs[0]) == 384, [len(v) for v in vecs]
dot = lambda a, b: sum(x * y for x, y in zip(a, b))
assert dot(vecs[0], vecs[1]) > dot(vecs[0], vecs[2]), "年假 should be nearer 年假有几天 than 报销发票"
seen["embedding_dim"] = len(vecs[0])

# errors arrive as the SDK's own exceptions
try:
    client.chat.completions.create(
        model="kb:no-such-kb", messages=[{"role": "user", "content": "hi"}]
    )
    sys.exit("a missing knowledge base did not raise")
except openai.NotFoundError as err:
    seen["not_found"] = err.status_code
bad = OpenAI(base_url=os.environ["LUODI_URL"] + "/v1", api_key="ld-wrong")
try:
    bad.models.list()
    sys.exit("a wrong key did not raise")
except openai.AuthenticationError as err:
    seen["unauthorized"] = err.status_code

print(json.dumps(seen, ensure_ascii=False))
