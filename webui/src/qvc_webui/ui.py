"""Browser chat UI: one static page, a client of this instance's ``/v1/chat/completions``.

Why not Gradio: gradio 5.x requires ``starlette<1.0`` and ``pydantic<2.13``; installing it
beside vllm 0.32 downgrades both under vLLM (its resolved set is starlette 1.x, pydantic
2.14; see webui/README.md).  Gradio's queue also opens several connections per session,
which needs LB affinity (ANCHORS.md).  This page needs neither: every turn is one streamed
``POST /v1/chat/completions`` (the same request any OpenAI client sends), so the LB,
rate limit, drain and metrics treat UI and API traffic the same.
"""
from __future__ import annotations

import html
import json

from .config import Settings

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>__TITLE__</title>
<style>
body{font-family:system-ui,sans-serif;max-width:52rem;margin:1rem auto;padding:0 1rem;color:#222}
#log{border:1px solid #ccc;border-radius:6px;padding:.5rem;min-height:16rem;max-height:60vh;overflow:auto}
.m{white-space:pre-wrap;margin:.3rem 0}.user{color:#064}.assistant{color:#222}.err{color:#a00}
form{display:flex;gap:.5rem;margin-top:.5rem;flex-wrap:wrap}#q{flex:1 1 20rem;padding:.4rem}
small{color:#666}
</style></head><body>
<h1>__TITLE__</h1><small>model <code id="model">__MODEL__</code> &middot; OpenAI API at <code>/v1</code></small>
<div id="log" aria-live="polite"></div>
<form id="f"><input id="q" autocomplete="off" placeholder="Message" aria-label="message">
<input id="img" type="file" accept="image/*" aria-label="image">
<button id="send" type="submit">Send</button><button id="clear" type="button">Clear</button></form>
<script>
const MODEL = __MODEL_JSON__;
const log = document.getElementById('log'), form = document.getElementById('f');
let history = [];
function add(cls, text){const d=document.createElement('div');d.className='m '+cls;d.textContent=text;log.appendChild(d);log.scrollTop=log.scrollHeight;return d;}
function dataUrl(file){return new Promise((ok,bad)=>{const r=new FileReader();r.onload=()=>ok(r.result);r.onerror=bad;r.readAsDataURL(file);});}
document.getElementById('clear').onclick=()=>{history=[];log.textContent='';};
form.onsubmit = async (ev) => {
  ev.preventDefault();
  const q = document.getElementById('q'), img = document.getElementById('img');
  const text = q.value.trim(); if(!text && !img.files.length) return;
  let content = text;
  if (img.files.length) { content = [{type:'image_url', image_url:{url: await dataUrl(img.files[0])}}, {type:'text', text}]; }
  history.push({role:'user', content}); add('user', text + (img.files.length ? ' [image]' : ''));
  q.value=''; img.value='';
  const out = add('assistant', ''); let answer = '';
  try {
    const r = await fetch('v1/chat/completions', {method:'POST', headers:{'content-type':'application/json'},
      body: JSON.stringify({model: MODEL, messages: history, stream: true})});
    if (!r.ok) { const e = await r.json().catch(()=>({})); throw new Error((e.error && e.error.message) || r.statusText); }
    const reader = r.body.getReader(), dec = new TextDecoder(); let buf = '';
    for (;;) {
      const {value, done} = await reader.read(); if (done) break;
      buf += dec.decode(value, {stream:true}); let i;
      while ((i = buf.indexOf('\\n\\n')) >= 0) {
        const ev = buf.slice(0, i); buf = buf.slice(i + 2);
        if (!ev.startsWith('data: ')) continue; const data = ev.slice(6);
        if (data === '[DONE]') continue;
        const obj = JSON.parse(data);
        if (obj.error) throw new Error(obj.error.message);
        const d = obj.choices && obj.choices[0] && obj.choices[0].delta;
        if (d && d.content) { answer += d.content; out.textContent = answer; log.scrollTop = log.scrollHeight; }
      }
    }
    history.push({role:'assistant', content: answer});
  } catch (e) { out.className = 'm err'; out.textContent = 'error: ' + e.message; history.pop(); }
};
</script></body></html>
"""


def render_page(settings: Settings) -> bytes:
    return (_PAGE.replace("__TITLE__", html.escape(settings.ui_title))
            .replace("__MODEL_JSON__", json.dumps(settings.model_name).replace("<", "\\u003c"))
            .replace("__MODEL__", html.escape(settings.model_name))).encode()
