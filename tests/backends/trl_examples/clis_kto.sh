# Copied unchanged from huggingface/trl@f2cd57710 docs/source/clis.md (lines 80-82)
trl kto \
  --model_name_or_path Qwen/Qwen2.5-0.5B \
  --dataset_name trl-lib/kto-mix-14k
