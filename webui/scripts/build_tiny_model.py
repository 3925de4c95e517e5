#!/usr/bin/env python3
"""Build a tiny, RANDOM-WEIGHT checkpoint of the real Qwen3-VL architecture.

    python webui/scripts/build_tiny_model.py OUTDIR [--seed 0]

Hugging Face is unreachable from the development machines, so tests, the local demo and
the CPU benchmark use this checkpoint instead of Qwen/Qwen3-VL-4B-Instruct.  It is loaded
by the service through exactly the same code path as the real model (AutoProcessor +
AutoModelForImageTextToText -> Qwen3VLForConditionalGeneration).  Its answers are
meaningless token salad: the weights are random.

What is written (all via save_pretrained):
  config.json / model.safetensors  Qwen3VLConfig + Qwen3VLForConditionalGeneration (~1 MB)
  tokenizer.json + tokenizer_config.json  byte-level BPE trained here with the `tokenizers`
      library, with the Qwen chat / vision special tokens and a Qwen-style chat template
  preprocessor_config.json  Qwen2VL image processor (patch 16, merge 2, as Qwen3-VL)
  chat_template.jinja, processor_config.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# Qwen3 has these as added (non-special) tokens; vLLM's hermes tool parser requires them.
TOOL_TOKENS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]

# Qwen3-VL compatible template (subset): string or list content, image/video placeholders,
# tools (hermes format: <tool_call>{json}</tool_call>) and tool results.
CHAT_TEMPLATE = (
    "{%- macro render(content) -%}"
    "{%- if content is string -%}{{- content -}}"
    "{%- elif content is not none -%}{%- for part in content -%}"
    "{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif part['type'] == 'video' or 'video' in part or 'video_url' in part -%}"
    "{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}"
    "{%- elif 'text' in part -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
    "{%- if tools -%}"
    "{{- '<|im_start|>system\\n' -}}"
    "{%- if messages[0]['role'] == 'system' -%}{{- render(messages[0]['content']) + '\\n\\n' -}}{%- endif -%}"
    "{{- '# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' -}}"
    "{%- for tool in tools -%}{{- '\\n' -}}{{- tool | tojson -}}{%- endfor -%}"
    "{{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, "
    "\\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' and tools and loop.first -%}"
    "{%- elif message['role'] == 'tool' -%}"
    "{{- '<|im_start|>user\\n<tool_response>\\n' + render(message['content']) + '\\n</tool_response><|im_end|>\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + render(message['content']) -}}"
    "{%- for tc in message.get('tool_calls') or [] -%}"
    "{%- set f = tc['function'] if 'function' in tc else tc -%}"
    "{{- '\\n<tool_call>\\n{\\\"name\\\": \\\"' + f['name'] + '\\\", \\\"arguments\\\": ' -}}"
    "{%- if f['arguments'] is string -%}{{- f['arguments'] -}}{%- else -%}{{- f['arguments'] | tojson -}}{%- endif -%}"
    "{{- '}\\n</tool_call>' -}}"
    "{%- endfor -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A picture shows a red square on a white background.",
    "Describe the image. What is in this video? Answer briefly.",
    "Hello! How can I help you today? The answer is 42.",
    "Qwen3-VL is a vision language model served by the qvc webui.",
    "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:!?'\"()[]{}<>-_/\\",
]


def build_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 20, trainer=trainer)
    tok.add_special_tokens(SPECIAL_TOKENS)  # appended after the BPE vocabulary, like Qwen
    tok.add_tokens(TOOL_TOKENS)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
        chat_template=CHAT_TEMPLATE,
    )


def build(outdir: Path, seed: int = 0) -> Path:
    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    torch.manual_seed(seed)
    outdir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(vocab_size=400)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    vocab = len(tokenizer)

    # vLLM's CPU attention supports head_dim 64 (not 16): 4 heads x 64 = hidden 256
    head_dim = 64
    config = Qwen3VLConfig(
        text_config={
            "vocab_size": vocab,
            "hidden_size": 256,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": head_dim,
            "max_position_embeddings": 32768,  # >= vLLM max_model_len defaults
            # mrope_section (t, h, w) must sum to head_dim / 2
            "rope_parameters": {"rope_type": "default", "rope_theta": 5_000_000.0,
                                "mrope_section": [16, 8, 8], "mrope_interleaved": True},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_heads": 2,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": 256,
            "num_position_embeddings": 256,
            "deepstack_visual_indexes": [0],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    model = Qwen3VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False
    model.save_pretrained(outdir)
    tokenizer.save_pretrained(outdir)

    image_processor = Qwen2VLImageProcessorPil(
        patch_size=16, merge_size=2, temporal_patch_size=2,
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
        size={"shortest_edge": 32 * 32, "longest_edge": 256 * 256},
    )
    image_processor.save_pretrained(outdir)
    # The real checkpoint names the (torchvision-optional) Qwen2VLImageProcessor class.
    pp = outdir / "preprocessor_config.json"
    data = json.loads(pp.read_text())
    data["image_processor_type"] = "Qwen2VLImageProcessor"
    data["processor_class"] = "Qwen3VLProcessor"
    pp.write_text(json.dumps(data, indent=2))
    (outdir / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    (outdir / "processor_config.json").write_text(json.dumps({"processor_class": "Qwen3VLProcessor"}))
    # safetensors writes 0600: the instances read the model as their own uid (webui_uid)
    for f in outdir.iterdir():
        f.chmod(0o644)
    (outdir / "QVC_TINY_RANDOM_WEIGHTS").write_text("random weights: outputs are meaningless\n")
    (outdir / "README.md").write_text(
        "# qvc tiny Qwen3-VL (RANDOM WEIGHTS)\n\nBuilt by webui/scripts/build_tiny_model.py for tests and "
        "demos. Real Qwen3-VL architecture, random weights: outputs are meaningless.\n"
    )
    return outdir


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = build(args.outdir, args.seed)
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"tiny random-weight Qwen3-VL written to {out} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
