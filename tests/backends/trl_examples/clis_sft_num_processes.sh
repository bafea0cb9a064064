# Copied unchanged from huggingface/trl@f2cd57710 docs/source/clis.md (lines 199-202)
trl sft \
  --model_name_or_path Qwen/Qwen2.5-0.5B \
  --dataset_name stanfordnlp/imdb \
  --num_processes 4
