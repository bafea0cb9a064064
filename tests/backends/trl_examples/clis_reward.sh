# Copied unchanged from huggingface/trl@f2cd57710 docs/source/clis.md (lines 51-53)
trl reward \
  --model_name_or_path Qwen/Qwen2.5-0.5B \
  --dataset_name trl-lib/ultrafeedback_binarized
