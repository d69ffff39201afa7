"""Build a tiny, randomly initialised GLM-4.5V-architecture checkpoint offline (for tests only).

It has the real `Glm4vMoeForConditionalGeneration` architecture (vision tower, MoE text model,
M-RoPE) at toy sizes, a small byte-level BPE tokenizer carrying GLM's special tokens, a chat
template shaped like GLM-4.5V's, and the PIL image processor. Its text is random: it exercises
the plumbing of the transformers backend, never the model's knowledge.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "[MASK]",
    "[gMASK]",
    "[sMASK]",
    "<sop>",
    "<eop>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
    "<|begin_of_image|>",
    "<|end_of_image|>",
    "<|begin_of_video|>",
    "<|end_of_video|>",
    "<|image|>",
    "<|video|>",
    "<|begin_of_box|>",
    "<|end_of_box|>",
    "<think>",
    "</think>",
]

# GLM-4.5V's template, reduced: user turns with image/text parts; thinking off = empty think block.
CHAT_TEMPLATE = (
    "[gMASK]<sop>{% for m in messages %}<|{{ m['role'] }}|>\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for p in m['content'] %}"
    "{% if p['type'] == 'image' %}<|begin_of_image|><|image|><|end_of_image|>"
    "{% elif p['type'] == 'text' %}{{ p['text'] }}{% endif %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think></think>\n{% endif %}{% endif %}"
)

CORPUS = [
    "Find every person in this image. person: [[120,300,220,860]] none",
    'The video runs from 0.0 s to 9.0 s. Answer in JSON only: {"summary": "", "segments": []}',
    "Frame at t=3.0s: a red figure walks from left to right across the scene.",
    "label: [[x1,y1,x2,y2]] coordinates normalised to 0-1000, bounding box of each instance.",
]


def build_tiny_checkpoint(target: str | Path) -> Path:
    """Write tokenizer, image processor, config and random weights into `target`; return it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Glm4vMoeConfig, Glm4vMoeForConditionalGeneration, PreTrainedTokenizerFast
    from transformers.models.glm4v.image_processing_pil_glm4v import Glm4vImageProcessorPil

    out = Path(target)
    out.mkdir(parents=True, exist_ok=True)
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tk.train_from_iterator(CORPUS * 4, trainer)
    tok = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tk, eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(out)
    ids: dict[str, int] = {t: int(cast(int, tok.convert_tokens_to_ids(t))) for t in SPECIAL_TOKENS}
    eos = ids["<|endoftext|>"]

    Glm4vImageProcessorPil().save_pretrained(out)  # defaults: 14 px patches, 2×2 merge, 2 frames
    config = Glm4vMoeConfig(
        text_config={
            "vocab_size": len(tok),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "moe_intermediate_size": 32,
            "n_routed_experts": 4,
            "num_experts_per_tok": 2,
            "n_shared_experts": 1,
            "first_k_dense_replace": 1,
            # mrope_section must sum to head_dim * partial_rotary_factor / 2 = 16 * 0.5 / 2
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1e4,
                "partial_rotary_factor": 0.5,
                "mrope_section": [1, 1, 2],
            },
            "eos_token_id": eos,
            "pad_token_id": eos,
        },
        vision_config={
            "depth": 1,
            "hidden_size": 32,
            "num_heads": 2,
            "intermediate_size": 64,
            "out_hidden_size": 64,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=ids["<|image|>"],
        video_token_id=ids["<|video|>"],
        image_start_token_id=ids["<|begin_of_image|>"],
        image_end_token_id=ids["<|end_of_image|>"],
        video_start_token_id=ids["<|begin_of_video|>"],
        video_end_token_id=ids["<|end_of_video|>"],
    )
    torch.manual_seed(0)
    model = Glm4vMoeForConditionalGeneration(config)
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = eos
    model.save_pretrained(out)
    return out
