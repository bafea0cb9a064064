# Copied unchanged from huggingface/trl@f2cd57710 docs/source/clis.md (lines 42-44)
trl dpo \
  --model_name_or_path Qwen/Qwen2.5-0.5B \
  --dataset_name anthropic/hh-rlhf
