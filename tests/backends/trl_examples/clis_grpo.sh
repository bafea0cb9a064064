# Copied unchanged from huggingface/trl@f2cd57710 docs/source/clis.md (lines 60-63)
trl grpo \
  --model_name_or_path Qwen/Qwen2.5-0.5B \
  --dataset_name HuggingFaceH4/Polaris-Dataset-53K \
  --reward_funcs accuracy_reward
