# Copied unchanged from huggingface/trl@f2cd57710 docs/source/clis.md (lines 383-386)
trl sft \
  --model_name_or_path Qwen/Qwen2.5-0.5B \
  --dataset_name stanfordnlp/imdb \
  --accelerate_config zero2  # or path/to/my/accelerate/config.yaml
